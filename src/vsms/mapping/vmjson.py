"""A VirtualSystem as plain JSON data (for undo records such as ``redefine {vm}``), and back."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from vsms.errors import InvalidParameter
from vsms.model.vm import (
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    NetworkAdapter,
    Snapshot,
    VirtualSystem,
)


def to_json(vs: VirtualSystem) -> dict[str, Any]:
    """Every field of ``vs`` as JSON-serialisable data (``created`` in ISO 8601)."""
    data = dataclasses.asdict(vs)
    data["created"] = vs.created.isoformat()
    data["snapshots"] = [{"id": s.id, "name": s.name, "created": s.created.isoformat(),
                          "parent": s.parent, "memory": s.memory, "config": to_json(s.config)}
                         for s in vs.snapshots]
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def from_json(data: dict[str, Any] | str) -> VirtualSystem:
    """The VirtualSystem ``to_json`` described (a dict, or its JSON text)."""
    try:
        raw = json.loads(data) if isinstance(data, str) else dict(data)
        vs = VirtualSystem(**{k: v for k, v in raw.items() if k not in (
            "controllers", "drives", "media", "nics", "created", "element_names",
            "snapshots", "discarded")})
        vs.created = datetime.fromisoformat(raw["created"])
        vs.controllers = [Controller(c["dev_id"], ControllerKind(c["kind"]), int(c["index"]))
                          for c in raw.get("controllers", [])]
        vs.drives = [Drive(d["dev_id"], DriveKind(d["kind"]), d["controller_id"],
                           int(d["address"])) for d in raw.get("drives", [])]
        vs.media = [Media(m["dev_id"], m["drive_id"], m["path"], ImageFormat(m["format"]))
                    for m in raw.get("media", [])]
        vs.nics = [NetworkAdapter(n["dev_id"], n["mac"], n.get("switch", ""),
                                  bool(n.get("synthetic", True)), bool(n.get("static_mac", True)),
                                  [str(i) for i in n.get("identifiers", [])],
                                  str(n.get("port", "")), str(n.get("switch_id", "")))
                   for n in raw.get("nics", [])]
        vs.element_names = {str(k): str(v) for k, v in raw.get("element_names", {}).items()}
        vs.discarded = [str(p) for p in raw.get("discarded", [])]
        vs.snapshots = [Snapshot(str(s["id"]), str(s["name"]),
                                 datetime.fromisoformat(s["created"]), str(s["parent"]),
                                 from_json(s["config"]), str(s.get("memory", "")))
                        for s in raw.get("snapshots", [])]
        return vs
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidParameter(f"stored virtual machine description is not valid: {exc}") from exc
