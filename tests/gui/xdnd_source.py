"""A drag source of its own, speaking XDND over the X protocol as a file manager does.

`python -m tests.gui.xdnd_source WINDOW PATH... [--suggest move]` drags the files' URIs onto the
X window WINDOW (its id, as `xdotool search` prints it): XdndEnter, XdndPosition at the window's
centre suggesting one action while offering copy, move and link (XdndActionList), then XdndDrop;
it serves the selection the target asks for and prints one JSON line: the actions the target
answered in XdndStatus and in XdndFinished, whether it accepted, and the types it requested.
It runs in its own process, so Qt sees an external drag exactly as from another program.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from Xlib import X, Xatom, display
from Xlib.protocol import event

VERSION = 5


class Source:
    def __init__(self, target: int, uris: list[str], actions: list[str]) -> None:
        self.d = display.Display()
        self.atom = lambda name: self.d.intern_atom(name)
        self.target = self.d.create_resource_object("window", target)
        self.payload = ("\r\n".join(uris) + "\r\n").encode()
        root = self.d.screen().root
        self.win = root.create_window(
            -10, -10, 1, 1, 0, X.CopyFromParent, event_mask=X.PropertyChangeMask
        )
        if actions:
            self.win.change_property(
                self.atom("XdndActionList"), Xatom.ATOM, 32, [self.atom(a) for a in actions]
            )
            self.win.change_property(
                self.atom("XdndActionDescription"),
                Xatom.STRING,
                8,
                b"".join(a.removeprefix("XdndAction").encode() + b"\0" for a in actions),
            )
        self.time = self._server_time()
        self.win.set_selection_owner(self.atom("XdndSelection"), self.time)
        self.d.flush()
        self.requested: list[str] = []

    def _server_time(self) -> int:
        """A real server timestamp: the time of a PropertyNotify on our own window."""
        self.win.change_property(self.atom("CONFIDANT_TEST_TIME"), Xatom.STRING, 8, b"t")
        self.d.flush()
        while True:
            ev = self.d.next_event()
            if ev.type == X.PropertyNotify:
                return ev.time

    def _send(self, name: str, data: list[int]) -> None:
        msg = event.ClientMessage(
            window=self.target,
            client_type=self.atom(name),
            data=(32, (data + [0] * 5)[:5]),
        )
        self.target.send_event(msg, event_mask=0)
        self.d.flush()

    def _wait(self, name: str, timeout: float = 20.0):
        """The next ClientMessage `name`, serving selection requests while waiting."""
        deadline = time.monotonic() + timeout
        want = self.atom(name)
        while time.monotonic() < deadline:
            if not self.d.pending_events():
                time.sleep(0.01)
                continue
            ev = self.d.next_event()
            if ev.type == X.SelectionRequest:
                self._serve(ev)
            elif ev.type == X.ClientMessage and ev.client_type == want:
                return ev
        raise TimeoutError(f"no {name} from the target within {timeout} s")

    def _serve(self, req) -> None:
        target_name = self.d.get_atom_name(req.target)
        self.requested.append(target_name)
        prop = req.property or req.target
        if target_name == "TARGETS":
            req.requestor.change_property(
                prop, Xatom.ATOM, 32, [self.atom("text/uri-list"), self.atom("TARGETS")]
            )
        elif target_name == "text/uri-list":
            req.requestor.change_property(prop, req.target, 8, self.payload)
        else:
            prop = X.NONE
        notify = event.SelectionNotify(
            time=req.time,
            requestor=req.requestor,
            selection=req.selection,
            target=req.target,
            property=prop,
        )
        req.requestor.send_event(notify)
        self.d.flush()

    def drag(self, suggest: str) -> dict:
        geometry = self.target.get_geometry()
        origin = self.target.translate_coords(self.d.screen().root, 0, 0)
        x = -origin.x + geometry.width // 2
        y = -origin.y + geometry.height // 2
        source = self.win.id
        self._send("XdndEnter", [source, VERSION << 24, self.atom("text/uri-list"), 0, 0])
        statuses = []
        for dx in (0, 4, 8):  # a few motions, as a real drag sends
            self._send(
                "XdndPosition",
                [source, 0, ((x + dx) << 16) | (y + dx), self.time, self.atom(suggest)],
            )
            status = self._wait("XdndStatus")
            accepted = bool(status.data[1][1] & 1)
            action = status.data[1][4]
            statuses.append(self.d.get_atom_name(action) if action else None)
        if not accepted:
            self._send("XdndLeave", [source])
            return {"accepted": False, "status": statuses, "finished": None}
        self._send("XdndDrop", [source, 0, self.time])
        finished = self._wait("XdndFinished")
        ok = bool(finished.data[1][1] & 1)
        action = finished.data[1][2]
        return {
            "accepted": True,
            "status": statuses,
            "finished": self.d.get_atom_name(action) if action else None,
            "success": ok,
            "requested": self.requested,
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("window", type=lambda s: int(s, 0))
    p.add_argument("paths", nargs="+")
    p.add_argument("--suggest", choices=("copy", "move", "link"), default="move")
    p.add_argument(
        "--offer", default="copy,move,link", help="XdndActionList, in order ('' for none)"
    )
    args = p.parse_args(argv)
    uris = [Path(p).resolve().as_uri() for p in args.paths]
    offer = ["XdndAction" + a.capitalize() for a in args.offer.split(",") if a]
    source = Source(args.window, uris, offer)
    result = source.drag("XdndAction" + args.suggest.capitalize())
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
