; Inno Setup 6 script for Confidant: a per-machine installer over the PyInstaller one-folder bundle.
;
;   pyinstaller --noconfirm --clean --distpath dist --workpath build packaging\confidant.spec
;   iscc /DAppVersion=0.1.0 packaging\windows\confidant.iss
;   iscc /DAppVersion=0.1.0 /DModelFile=C:\models\Llama-3.1-8B-Instruct-Q4_K_M.gguf packaging\windows\confidant.iss
;
; /DModelFile=PATH.gguf ships a chat model (as build-linux.sh --model): it is installed in
; %PROGRAMDATA%\Confidant\models and the machine-wide %PROGRAMDATA%\Confidant\settings.toml is
; written with llm_path set to it (a TOML literal string: backslashes kept), unless IT already
; installed one (it is then left alone).
;
; Output: dist\confidant-<version>-setup.exe. The bundle layout (confidant.exe, confidant-cli.exe,
; _internal\...) is declared in packaging\layout.py; tests\packaging\test_layout.py checks every
; path used here against it.
; Uninstalling keeps the user's library and chats (%LOCALAPPDATA%\Confidant) unless the user ticks
; the box offered during uninstallation (a silent uninstall always keeps them).

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Confidant"
#define AppExe "confidant.exe"
#define AppCliExe "confidant-cli.exe"
#define BundleDir "..\..\dist\confidant"
#ifdef ModelFile
  #define ShippedModel ModelFile
#else
  #define ShippedModel ""
#endif

[Setup]
AppId={{6F1E5B7A-3C2D-4E8F-9A0B-C0FFEE5A1E01}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Confidant maintainers
DefaultDirName={autopf}\Confidant
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=admin
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=confidant-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
; The whole bundle, as PyInstaller laid it out.
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
; An example of the machine-wide settings file IT may install as %PROGRAMDATA%\Confidant\settings.toml.
Source: "..\settings.example.toml"; DestDir: "{app}\_internal\resources"; Flags: ignoreversion
#ifdef ModelFile
; The chat model IT chose (iscc /DModelFile=...), kept apart from the program's folder.
Source: "{#ShippedModel}"; DestDir: "{commonappdata}\Confidant\models"; Flags: ignoreversion nocompression
#endif

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
var
  RemoveUserData: Boolean;

#ifdef ModelFile
{ With a model shipped: machine-wide settings pointing at it, unless IT has written its own. }
procedure CurStepChanged(CurStep: TSetupStep);
var
  Settings: String;
begin
  if CurStep = ssPostInstall then
  begin
    Settings := ExpandConstant('{commonappdata}\Confidant\settings.toml');
    if not FileExists(Settings) then
      SaveStringToFile(Settings,
        '# Written by Confidant''s installer: the chat model IT chose for this computer.' + #13#10 +
        'llm_path = ''' + ExpandConstant('{commonappdata}\Confidant\models\{#ExtractFileName(ModelFile)}') + '''' + #13#10,
        False);
  end;
end;
#endif

function UserDataDir(): String;
begin
  Result := ExpandConstant('{localappdata}\Confidant');
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usUninstall then
  begin
    RemoveUserData := False;
    { Ask only when there is something to remove, and never in a silent uninstall. }
    if DirExists(UserDataDir()) and not UninstallSilent() then
      RemoveUserData := MsgBox(
        'Also delete your Confidant library, chats and settings?' + #13#10 + #13#10 +
        UserDataDir() + #13#10 + #13#10 +
        'Choose No to keep them (a later installation will use them again).',
        mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES;
  end;
  if (CurUninstallStep = usPostUninstall) and RemoveUserData then
  begin
    if not DelTree(UserDataDir(), True, True, True) then
      MsgBox('Some files in ' + UserDataDir() + ' could not be deleted; remove them by hand.',
        mbInformation, MB_OK);
  end;
end;
