"""Kits: create, change (each change a new version), show, export and import them, and load one for a request."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..domain.errors import InputError
from ..domain.inputs import InputImage
from ..domain.kits import MAX_KIT_REFERENCES, ROLES, KitReference, KitUse, parse_kit_spec
from ..imaging.images import image_size, load_input_image, load_input_path
from ..imaging.outputs import extension_for
from ..storage.history.kits import KitRow, KitStore, StoredKit
from .validation import ImageSource

__all__ = ["KIT_FORMAT", "KitLibrary", "NewReference", "kit_json", "kit_from_record"]

KIT_FORMAT = "nanobanana-kit"  # kit.json's "format": a ZIP without it is not one of ours
_NAME = re.compile(r"[^\x00-\x1f\x7f@/\\]{1,64}")  # a kit's name: no control characters, no @ (it marks a version)
_LABEL_MAX = 80
_GUIDANCE_MAX = 300
_MAX_ZIP_BYTES = 200 * 2**20


@dataclass(frozen=True)
class NewReference:
    """A reference to add: the image (a path, bytes or an InputImage), its role, its name and optional guidance."""

    image: ImageSource
    role: str
    name: str
    guidance: str = ""


def _one_line(text: str, what: str, limit: int) -> str:
    text = " ".join((text or "").split())
    if len(text) > limit:
        raise InputError(f"{what} is {len(text)} characters long; the limit is {limit}.")
    return text


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.fullmatch(name):
        raise InputError(f"{name!r} is not a kit name: use 1 to 64 characters, without '@', '/' or control "
                         "characters (e.g. storyboard or red-mug).")
    return name


def _check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise InputError(f"{role!r} is not a reference role: choose one of {', '.join(ROLES)}.")
    return role


def _check_references(rows: Sequence[KitRow], kit: str) -> None:
    if len(rows) > MAX_KIT_REFERENCES:
        raise InputError(f"A kit holds at most {MAX_KIT_REFERENCES} references; kit {kit!r} would have {len(rows)}. "
                         "Remove one first (kits remove NAME LABEL).")
    seen: set[str] = set()
    for row in rows:
        if not row.name:
            raise InputError(f"A reference of kit {kit!r} has no name: give each one a name, e.g. --name Mia.")
        if row.name.casefold() in seen:
            raise InputError(f"Kit {kit!r} already has a reference named {row.name!r}: names must differ, so the "
                             "prompt can tell them apart.")
        seen.add(row.name.casefold())


def kit_json(kit: StoredKit) -> dict[str, Any]:
    """`kits show --json`: name, version, created, text, and references with name, role, guidance and sha256."""
    return {"name": kit.name, "version": kit.version, "created": kit.created, "text": kit.text,
            "references": [{"name": r.name, "role": r.role, "guidance": r.guidance, "sha256": r.sha256,
                            "mime_type": r.mime_type} for r in kit.references]}


def _input_of(data: bytes, sha256: str, mime_type: str, name: str) -> InputImage:
    """A stored kit image as a request sends it (already normalised and stripped when it was added)."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(f"The stored image of kit reference {name!r} no longer holds the bytes it was added with; "
                         "run `history --verify`, then add the reference again.")
    width, height = image_size(data)
    return InputImage(data=data, mime_type=mime_type, sha256=sha256, width=width, height=height, name=name)


def kit_from_record(record: Mapping[str, Any], read_file: Callable[[str, str], bytes]) -> KitUse:
    """The exact kit version a history entry used, rebuilt from its record and the stored files (the kit itself may
    have changed or gone since); a file that is gone raises FileNotFoundError."""
    references = []
    for ref in record.get("references") or ():
        sha, mime, name = str(ref["sha256"]), str(ref.get("mime_type") or "image/png"), str(ref["name"])
        references.append(KitReference(name=name, role=str(ref["role"]), guidance=str(ref.get("guidance") or ""),
                                       image=_input_of(read_file(sha, mime), sha, mime, name)))
    return KitUse(name=str(record["name"]), version=int(record["version"]), references=tuple(references),
                  text=str(record.get("text") or ""))


class KitLibrary:
    """One data directory's kits, each owner's apart (`owner` None: the local user; public mode: the visitor)."""

    def __init__(self, store: KitStore) -> None:
        self.store = store

    # -- reading -----------------------------------------------------------------------------------------------

    def names(self, *, owner: str | None = None) -> list[tuple[str, int]]:
        """Every kit of this owner, with its newest version."""
        return self.store.names(owner=owner)

    def show(self, spec: str, *, owner: str | None = None) -> StoredKit:
        """One version of a kit, `NAME` (the newest) or `NAME@3`; an unknown kit or version raises InputError."""
        name, version = parse_kit_spec(spec)
        kit = self.store.get(name, version, owner=owner)
        if kit is not None:
            return kit
        versions = self.store.versions(name, owner=owner)
        if not versions:
            known = ", ".join(n for n, _ in self.names(owner=owner)) or "none yet (kits create NAME IMAGE...)"
            raise InputError(f"There is no kit named {name!r}. Your kits: {known}.")
        raise InputError(f"Kit {name!r} has no version {version}; its versions are 1 to {versions[-1]}.")

    def use(self, spec: str, *, owner: str | None = None) -> KitUse:
        """The kit version a request will send, its images read and checked against their digests."""
        kit = self.show(spec, owner=owner)
        references = []
        for ref in kit.references:
            try:
                data = ref.path.read_bytes()
            except FileNotFoundError:
                raise InputError(f"The image of kit reference {ref.name!r} ({kit.name}@{kit.version}) is gone from "
                                 "the history's files; add it again.") from None
            references.append(KitReference(name=ref.name, role=ref.role, guidance=ref.guidance,
                                           image=_input_of(data, ref.sha256, ref.mime_type, ref.name)))
        return KitUse(name=kit.name, version=kit.version, references=tuple(references), text=kit.text)

    # -- changing (each change writes a new version) -----------------------------------------------------------

    def create(self, name: str, references: Sequence[NewReference], *, text: str = "",
               owner: str | None = None) -> StoredKit:
        """A new kit (version 1); a name already in use is refused (add to it, or import, for a new version)."""
        name = _check_name(name)
        if self.store.versions(name, owner=owner):
            raise InputError(f"A kit named {name!r} already exists: add to it with `kits add`, or choose another "
                             "name.")
        if not references:
            raise InputError("A kit needs at least one reference image.")
        return self._save(name, [self._row(ref) for ref in self._fits(references, 0, name)], text=text, owner=owner)

    def add(self, spec_name: str, reference: NewReference | Sequence[NewReference], *,
            owner: str | None = None) -> StoredKit:
        """The kit's next version: its newest one plus this reference (or these), at the end."""
        kit = self.show(_check_name(spec_name), owner=owner)
        added = [reference] if isinstance(reference, NewReference) else list(reference)
        self._fits(added, len(kit.references), kit.name)
        return self._save(kit.name, [*self._kept(kit), *map(self._row, added)], text=kit.text, owner=owner)

    def remove(self, spec_name: str, label: str, *, owner: str | None = None) -> StoredKit:
        """The kit's next version without the reference named `label` (its old versions keep it)."""
        kit = self.show(_check_name(spec_name), owner=owner)
        kept = [row for row in self._kept(kit) if row.name.casefold() != (label or "").strip().casefold()]
        if len(kept) == len(kit.references):
            names = ", ".join(ref.name for ref in kit.references)
            raise InputError(f"Kit {kit.name!r} has no reference named {label!r}; its references: {names}.")
        if not kept:
            raise InputError(f"{label!r} is the last reference of kit {kit.name!r}; a kit keeps at least one.")
        return self._save(kit.name, kept, text=kit.text, owner=owner)

    def change(self, spec_name: str, rows: Sequence[KitRow], *, text: str | None = None,
               owner: str | None = None) -> StoredKit:
        """The kit's next version with these references (renamed, re-roled, reordered or fewer: the page's editor)."""
        kit = self.show(_check_name(spec_name), owner=owner)
        known = {ref.sha256 for ref in kit.references}
        if any(row.data is None and row.sha256 not in known for row in rows):
            raise InputError("A reference names an image this kit does not hold; upload it instead.")
        rows = [KitRow(_one_line(r.name, "A reference name", _LABEL_MAX), _check_role(r.role),
                       _one_line(r.guidance, "A reference's guidance", _GUIDANCE_MAX), r.sha256, r.mime_type, r.data)
                for r in rows]
        return self._save(kit.name, rows, text=kit.text if text is None else text, owner=owner)

    # -- export and import -------------------------------------------------------------------------------------

    def export_zip(self, spec: str, dest: Path, *, owner: str | None = None) -> Path:
        """A ZIP at `dest`: the version's images under images/ and a kit.json that lists them in order."""
        kit = self.show(spec, owner=owner)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".tmp-{secrets.token_hex(6)}-{dest.name}")
        listed = []
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                for number, ref in enumerate(kit.references, start=1):
                    file = f"images/{number:02d}-{ref.sha256[:12]}{extension_for(ref.mime_type)}"
                    archive.write(ref.path, file)
                    listed.append({"name": ref.name, "role": ref.role, "guidance": ref.guidance, "file": file,
                                   "sha256": ref.sha256})
                archive.writestr("kit.json", json.dumps({"format": KIT_FORMAT, "format_version": 1, "name": kit.name,
                                                         "version": kit.version, "text": kit.text,
                                                         "references": listed}, ensure_ascii=False, indent=2))
            tmp.replace(dest)
        except FileNotFoundError as error:
            raise InputError(f"Kit {kit.name}@{kit.version} has lost an image file ({error.filename}); "
                             "run `history --verify`.") from None
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def import_zip(self, source: Path, *, owner: str | None = None) -> StoredKit:
        """A kit from an exported ZIP: a new kit, or the next version of one of that name (never an overwrite)."""
        manifest, images = _read_kit_zip(Path(source))
        name = _check_name(str(manifest.get("name") or ""))
        refs = []
        for item in manifest["references"]:
            if not isinstance(item, dict):
                raise InputError(f"{Path(source).name}: kit.json lists a reference that is not an object.")
            refs.append(NewReference(image=images[str(item.get("file"))], role=str(item.get("role") or ""),
                                     name=str(item.get("name") or ""), guidance=str(item.get("guidance") or "")))
        rows = [self._row(ref) for ref in self._fits(refs, 0, name)]
        return self._save(name, rows, text=str(manifest.get("text") or ""), owner=owner)

    # -- helpers -----------------------------------------------------------------------------------------------

    @staticmethod
    def _fits(references: Sequence[NewReference], held: int, kit: str) -> Sequence[NewReference]:
        if held + len(references) > MAX_KIT_REFERENCES:
            raise InputError(f"A kit holds at most {MAX_KIT_REFERENCES} references; kit {kit!r} has {held} and "
                             f"you are adding {len(references)}. Remove some first (kits remove NAME LABEL).")
        return references

    @staticmethod
    def _row(ref: NewReference) -> KitRow:
        """A reference ready to store: its image normalised with personal metadata stripped (never kept)."""
        label = _one_line(ref.name, "A reference name", _LABEL_MAX)
        source = ref.image
        if isinstance(source, InputImage):
            image = load_input_image(source.data, label or source.name)
        elif isinstance(source, bytes):
            image = load_input_image(source, label or "image")
        else:
            image = load_input_path(source)
        return KitRow(name=label, role=_check_role(ref.role), guidance=_one_line(ref.guidance, "A reference's "
                      "guidance", _GUIDANCE_MAX), sha256=image.sha256, mime_type=image.mime_type, data=image.data)

    @staticmethod
    def _kept(kit: StoredKit) -> list[KitRow]:
        return [KitRow(r.name, r.role, r.guidance, r.sha256, r.mime_type) for r in kit.references]

    def _save(self, name: str, rows: Sequence[KitRow], *, text: str, owner: str | None) -> StoredKit:
        _check_references(rows, name)
        text = _one_line(text, "A kit's line of text", _GUIDANCE_MAX)
        version = self.store.save(name, rows, text=text, owner=owner)
        saved = self.store.get(name, version, owner=owner)
        assert saved is not None  # just written
        return saved


def _read_kit_zip(source: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """kit.json and the images it lists, checked: ours, no path leaving the folder, nothing but images."""
    label = source.name
    try:
        archive = zipfile.ZipFile(source)
    except FileNotFoundError:
        raise InputError(f"{source} does not exist.") from None
    except (zipfile.BadZipFile, OSError):
        raise InputError(f"{label} is not a ZIP file: a kit is imported from the ZIP `kits export` made.") from None
    with archive:
        infos = archive.infolist()
        if sum(info.file_size for info in infos) > _MAX_ZIP_BYTES:
            raise InputError(f"{label} unpacks to more than {_MAX_ZIP_BYTES // 2**20} MB; a kit is far smaller.")
        for info in infos:
            path = PurePosixPath(info.filename.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", info.filename):
                raise InputError(f"{label} holds {info.filename!r}, a path that leaves the kit's folder; not imported.")
        try:
            manifest = json.loads(archive.read("kit.json"))
        except KeyError:
            raise InputError(f"{label} is not a kit of ours: it has no kit.json.") from None
        except ValueError:
            raise InputError(f"{label}: its kit.json is not valid JSON.") from None
        if not isinstance(manifest, dict) or manifest.get("format") != KIT_FORMAT or not isinstance(
                manifest.get("references"), list):
            raise InputError(f"{label} is not a kit of ours: its kit.json lacks \"format\": \"{KIT_FORMAT}\".")
        listed = {str(item.get("file")) for item in manifest["references"] if isinstance(item, dict)}
        names = {info.filename for info in infos if not info.is_dir()}
        unlisted = sorted(names - listed - {"kit.json"})
        if unlisted:
            raise InputError(f"{label} holds {unlisted[0]!r}, which kit.json does not list; not imported.")
        images = {}
        for file in sorted(listed):
            if file not in names:
                raise InputError(f"{label}: kit.json lists {file!r}, which the ZIP does not hold.")
            data = archive.read(file)
            load_input_image(data, f"{label}:{file}")  # a non-image or broken image is refused, naming it
            images[file] = data
    return manifest, images
