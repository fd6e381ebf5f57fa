"""The history database's schema, as small numbered migrations applied in order (simonw/llm style).

Each `mNNN_...` function takes an open connection and changes the schema one step; `migrate()` runs the ones a
database has not had yet, each in its own write transaction, and records the count in `PRAGMA user_version`.
Never edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["MIGRATIONS", "has_fts", "m001_initial", "m002_prompt_search", "m003_search_sources",
           "m004_conversations", "m005_region_inputs", "m006_prompt_craft", "m007_kits", "migrate",
           "schema_version"]


def m001_initial(db: sqlite3.Connection) -> None:
    """Entries (one per request, failures too) and their output images (content-addressed files)."""
    db.execute("""
        CREATE TABLE entries (
            id TEXT PRIMARY KEY,
            created TEXT NOT NULL,
            mode TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            input_hashes TEXT NOT NULL DEFAULT '[]',
            text TEXT NOT NULL DEFAULT '',
            finish_reason TEXT,
            prompt_tokens INTEGER,
            output_tokens INTEGER,
            total_tokens INTEGER,
            cost_usd REAL,
            cached INTEGER NOT NULL DEFAULT 0,
            elapsed_s REAL,
            error TEXT,
            error_type TEXT,
            owner TEXT
        )""")
    db.execute("CREATE INDEX entries_owner ON entries (owner, id)")
    db.execute("CREATE INDEX entries_model ON entries (model, id)")
    db.execute("""
        CREATE TABLE images (
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            mime_type TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            file_name TEXT NOT NULL,
            PRIMARY KEY (entry_id, position)
        )""")
    db.execute("CREATE INDEX images_sha256 ON images (sha256)")


def m002_prompt_search(db: sqlite3.Connection) -> None:
    """Full-text search over prompts (FTS5, kept in step by triggers); skipped where SQLite lacks FTS5."""
    try:
        db.execute("CREATE VIRTUAL TABLE entries_fts USING fts5(prompt, content='entries', content_rowid='rowid')")
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc):
            return  # the store falls back to LIKE when the table is absent
        raise
    db.execute("""
        CREATE TRIGGER entries_fts_insert AFTER INSERT ON entries BEGIN
            INSERT INTO entries_fts (rowid, prompt) VALUES (new.rowid, new.prompt);
        END""")
    db.execute("""
        CREATE TRIGGER entries_fts_delete AFTER DELETE ON entries BEGIN
            INSERT INTO entries_fts (entries_fts, rowid, prompt) VALUES ('delete', old.rowid, old.prompt);
        END""")
    db.execute("""
        CREATE TRIGGER entries_fts_update AFTER UPDATE OF prompt ON entries BEGIN
            INSERT INTO entries_fts (entries_fts, rowid, prompt) VALUES ('delete', old.rowid, old.prompt);
            INSERT INTO entries_fts (rowid, prompt) VALUES (new.rowid, new.prompt);
        END""")
    db.execute("INSERT INTO entries_fts (entries_fts) VALUES ('rebuild')")


def m003_search_sources(db: sqlite3.Connection) -> None:
    """Google Search grounding: each entry's sources (a JSON list of {"title", "uri"}) and Google's HTML snippet."""
    db.execute("ALTER TABLE entries ADD COLUMN sources TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE entries ADD COLUMN search_entry_point TEXT")


def m004_conversations(db: sqlite3.Connection) -> None:
    """Conversations: each entry's parent and turn, the model's turn as returned, and the files a path needs.

    `model_turn` is JSON (turns.parts_to_json: signatures as standard base64, images by digest); NULL means not
    known (entries from before this migration, failures). `files` lists the content-addressed files an entry needs
    besides its outputs: its input images (kind 'input') and its model turn's images exactly as returned ('model').
    Older entries become roots (turn 1) whose inputs were not kept.
    """
    db.execute("ALTER TABLE entries ADD COLUMN parent TEXT")
    db.execute("ALTER TABLE entries ADD COLUMN turn INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE entries ADD COLUMN model_turn TEXT")
    db.execute("CREATE INDEX entries_parent ON entries (parent, id)")
    db.execute("""
        CREATE TABLE files (
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('input', 'model')),
            position INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            mime_type TEXT NOT NULL,
            PRIMARY KEY (entry_id, kind, position)
        )""")
    db.execute("CREATE INDEX files_sha256 ON files (sha256)")


def m005_region_inputs(db: sqlite3.Connection) -> None:
    """Region edits: the region's description (JSON) on each entry, and the mask an entry keeps (role 'mask').

    Apart from m004's `files` (what a conversation turn sends again: kind 'input' or 'model', by position): the
    mask is not sent as it was kept (a crop of it is), and `files` allows only those two kinds.
    """
    db.execute("ALTER TABLE entries ADD COLUMN region TEXT")
    db.execute("""
        CREATE TABLE inputs (
            entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            mime_type TEXT NOT NULL,
            PRIMARY KEY (entry_id, role)
        )""")
    db.execute("CREATE INDEX inputs_sha256 ON inputs (sha256)")


def m006_prompt_craft(db: sqlite3.Connection) -> None:
    """Prompt craft: how an entry's prompt was made (JSON: style id, template, variables); NULL: as typed."""
    db.execute("ALTER TABLE entries ADD COLUMN craft TEXT")


def m007_kits(db: sqlite3.Connection) -> None:
    """Kits: named, versioned sets of reference images (one row per version, never changed once written), their
    references in order (images stored by content like inputs), and on each entry the kit it used (JSON).

    `owner` is '' for a local kit, else the public-mode visitor's partition: each visitor's kits are their own. An
    entry also keeps its kit's images in `inputs` (role 'kit-1', 'kit-2', ...), so it can be re-run exactly after the
    kit has changed.
    """
    db.execute("""
        CREATE TABLE kits (
            owner TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            created TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (owner, name, version)
        )""")
    db.execute("""
        CREATE TABLE kit_refs (
            owner TEXT NOT NULL DEFAULT '',
            kit TEXT NOT NULL,
            version INTEGER NOT NULL,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('character', 'object', 'style')),
            guidance TEXT NOT NULL DEFAULT '',
            sha256 TEXT NOT NULL,
            mime_type TEXT NOT NULL,
            PRIMARY KEY (owner, kit, version, position),
            FOREIGN KEY (owner, kit, version) REFERENCES kits (owner, name, version) ON DELETE CASCADE
        )""")
    db.execute("CREATE INDEX kit_refs_sha256 ON kit_refs (sha256)")
    db.execute("ALTER TABLE entries ADD COLUMN kit TEXT")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (m001_initial, m002_prompt_search,
                                                                m003_search_sources, m004_conversations,
                                                                m005_region_inputs, m006_prompt_craft, m007_kits)


def schema_version(db: sqlite3.Connection) -> int:
    """How many migrations this database has had."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def has_fts(db: sqlite3.Connection) -> bool:
    """True when the prompt search table exists (SQLite was built with FTS5)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'entries_fts'").fetchone() is not None


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database lacks, each in a transaction; returns their names (none: a no-op).

    The connection must be in autocommit mode (isolation_level=None). Safe against another process migrating at
    the same moment: the version is re-read once the write lock is held.
    """
    applied = []
    while schema_version(db) < len(MIGRATIONS):
        db.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(db)
            if version >= len(MIGRATIONS):
                db.execute("COMMIT")
                break
            step = MIGRATIONS[version]
            step(db)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(step.__name__)
    return applied
