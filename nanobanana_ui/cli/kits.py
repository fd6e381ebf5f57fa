"""The `kits` command: list, create, add, remove, show, export and import kits of reference images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..domain.config import load_settings
from ..domain.errors import InputError
from ..domain.kits import ROLES
from ..service.kits import KitLibrary, NewReference, kit_json
from ..storage.history import HistoryStore
from ..storage.history.kits import StoredKit

__all__ = ["add_kits_parser", "run_kits_command"]


def add_kits_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `kits list|create|add|remove|show|export|import`."""
    kits = commands.add_parser(
        "kits", help="named, versioned sets of reference images (characters, objects, styles) for --kit",
        description="A kit is a named set of up to 14 reference images, each with a role (character, object or "
                    "style) and a name the prompt can use. Every change makes a new version; NAME means the newest, "
                    "NAME@3 version 3. Use one with --kit NAME[@V] on generate, edit, compose, refine and batch.")
    actions = kits.add_subparsers(dest="kits_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="your kits and their newest versions")
    listing.add_argument("--json", action="store_true", help="one JSON object per kit: name, version, references")
    create = actions.add_parser("create", help="a new kit from one or more images (version 1)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    create.add_argument("--role", choices=ROLES, default="object", help="the images' role (default object)")
    create.add_argument("--name", dest="label", metavar="LABEL",
                        help="the reference's name (default: the file name; with several images, LABEL 1, LABEL 2...)")
    create.add_argument("--guidance", default="", metavar="TEXT", help='a line sent with the reference, e.g. '
                        '"always wears the yellow raincoat"')
    create.add_argument("--text", default="", metavar="TEXT", help="a line sent with every request using the kit")
    add = actions.add_parser("add", help="the kit's next version, with one more reference")
    add.add_argument("name", metavar="NAME")
    add.add_argument("image", type=Path, metavar="IMAGE")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--name", dest="label", required=True, metavar="LABEL")
    add.add_argument("--guidance", default="", metavar="TEXT")
    remove = actions.add_parser("remove", help="the kit's next version, without the reference named LABEL")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("label", metavar="LABEL")
    show = actions.add_parser("show", help="a kit's references (NAME: the newest version; NAME@3: version 3)")
    show.add_argument("kit", metavar="NAME[@V]")
    show.add_argument("--json", action="store_true", help="name, version and references (name, role, sha256)")
    export = actions.add_parser("export", help="a ZIP of the kit's images and its kit.json")
    export.add_argument("kit", metavar="NAME[@V]")
    export.add_argument("file", type=Path, metavar="FILE.zip")
    imported = actions.add_parser("import", help="a kit from an exported ZIP (an existing name gets a new version)")
    imported.add_argument("file", type=Path, metavar="FILE.zip")
    for action in (create, add, remove, export, imported):
        action.add_argument("--json", action="store_true", help="the kit version made, as `kits show --json`")


def _count(kit: StoredKit) -> str:
    return f"{len(kit.references)} reference{'' if len(kit.references) == 1 else 's'}"


def _print(kit: StoredKit, as_json: bool, verb: str | None = None) -> None:
    if as_json:
        print(json.dumps(kit_json(kit), ensure_ascii=False), flush=True)
        return
    if verb:
        print(f"{verb} {kit.name}@{kit.version}")
    else:
        print(f"{kit.name}@{kit.version}  ({_count(kit)}, made {kit.created[:19]})")
    if kit.text:
        print(f"  text: {kit.text}")
    for number, ref in enumerate(kit.references, start=1):
        guidance = f"  {ref.guidance}" if ref.guidance else ""
        print(f"  {number:2}. {ref.name} ({ref.role})  {ref.sha256[:12]}{guidance}")


def run_kits_command(args: argparse.Namespace) -> int:
    """Run one `kits` action on the data directory's kits (the local user's); InputError for bad input."""
    store = HistoryStore(load_settings().home)
    try:
        library = KitLibrary(store.kits)
        action = args.kits_command
        if action == "list":
            for name, _ in library.names():
                kit = library.show(f"{name}@{_}")
                if args.json:
                    print(json.dumps(kit_json(kit), ensure_ascii=False), flush=True)
                else:
                    print(f"{kit.name}@{kit.version}  {_count(kit)}")
            return 0
        if action == "create":
            many = len(args.images) > 1
            refs = [NewReference(image=path, role=args.role, guidance=args.guidance,
                                 name=(f"{args.label} {n}" if many else args.label) if args.label else path.stem)
                    for n, path in enumerate(args.images, start=1)]
            _print(library.create(args.name, refs, text=args.text), args.json, "created")
        elif action == "add":
            ref = NewReference(image=args.image, role=args.role, name=args.label, guidance=args.guidance)
            _print(library.add(args.name, ref), args.json, "added to")
        elif action == "remove":
            _print(library.remove(args.name, args.label), args.json, "removed from")
        elif action == "show":
            _print(library.show(args.kit), args.json)
        elif action == "export":
            kit = library.show(args.kit)
            if args.file.is_dir():
                raise InputError(f"{args.file} is a folder: give the ZIP file's name, e.g. {kit.name}.zip.")
            library.export_zip(f"{kit.name}@{kit.version}", args.file)
            _print(kit, args.json, f"exported to {args.file}:")
        elif action == "import":
            _print(library.import_zip(args.file), args.json, "imported")
        return 0
    finally:
        store.close()
