//! Backups, restores, and the JSON Lines export that moves an installation between SQLite and
//! PostgreSQL.
//!
//! The export file: a first line that says what it is, then one row a line, parents before
//! children (see `keyturn_store::TABLES`):
//!
//! ```text
//! {"keyturn_export":1,"schema":24,"from":"sqlite","exported_at":"2026-…"}
//! {"table":"products","row":{"id":1,"name":"Editor",…}}
//! ```
//!
//! Signing keys are in it as stored (sealed when a master key is configured), so the file is
//! written readable by its owner only, like the database it comes from.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use keyturn_store::{Counts, Dialect, Store, StoreOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The export format's version, in its first line.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    keyturn_export: u32,
    /// The newest migration of the database it was made from.
    schema: i64,
    from: String,
    exported_at: String,
}

#[derive(Serialize, Deserialize)]
struct Line {
    table: String,
    row: Map<String, Value>,
}

/// Creates `path` for writing, readable by its owner only; an existing file is refused, never
/// overwritten (it may be the last good backup).
pub fn create_private(path: &Path) -> anyhow::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).with_context(|| {
        if path.exists() {
            format!("{} exists already: choose a new file", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })
}

fn dialect_name(store: &Store) -> &'static str {
    match store.dialect() {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgres",
    }
}

/// Writes the export of `store` to `out`.
pub async fn export(store: &Store, out: impl Write) -> anyhow::Result<Counts> {
    let mut out = BufWriter::new(out);
    let header = Header {
        keyturn_export: FORMAT,
        schema: store.schema_version(),
        from: dialect_name(store).to_owned(),
        exported_at: chrono::Utc::now().to_rfc3339(),
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let counts = store
        .export_data(|table, row| {
            serde_json::to_writer(
                &mut out,
                &Line {
                    table: table.to_owned(),
                    row,
                },
            )?;
            out.write_all(b"\n")
        })
        .await
        .context("cannot export")?;
    out.flush().context("cannot write the export")?;
    out.into_inner()
        .map_err(|e| e.into_error())?
        .flush()
        .context("cannot write the export")?;
    Ok(counts)
}

/// Whether `path` starts like an export (rather than a SQLite file).
pub fn is_export(path: &Path) -> anyhow::Result<bool> {
    let mut first = [0u8; 1];
    let n = File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .read(&mut first)?;
    Ok(n == 1 && first[0] == b'{')
}

/// Imports the export in `path` into `store`, which must hold no licensing data yet. The file
/// is read a line at a time as rows are stored.
pub async fn import(store: &Store, path: &Path) -> anyhow::Result<Counts> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut lines = BufReader::new(file).lines();
    let first = lines
        .next()
        .transpose()?
        .context("the file is empty: not a Keyturn export")?;
    let header: Header = serde_json::from_str(&first)
        .ok()
        .filter(|h: &Header| h.keyturn_export == FORMAT)
        .context("the first line is not a Keyturn export's (format 1)")?;
    if header.schema > store.schema_version() {
        bail!(
            "the export comes from a newer Keyturn (schema {}, this one knows {}): import it \
             with that version",
            header.schema,
            store.schema_version()
        );
    }
    let rows = lines.enumerate().filter_map(|(i, line)| {
        let number = i + 2;
        match line {
            Err(e) => Some(Err(format!("line {number}: {e}"))),
            Ok(line) if line.trim().is_empty() => None,
            Ok(line) => Some(
                serde_json::from_str::<Line>(&line)
                    .map(|l| (l.table, l.row))
                    .map_err(|e| format!("line {number}: {e}")),
            ),
        }
    });
    store
        .import_data(rows)
        .await
        .context("cannot import (nothing was stored)")
}

/// Restores the SQLite backup `file` as the database of `data_dir`, which must be empty or not
/// exist: a restore never mixes with, or replaces, an installation's data.
pub async fn restore_sqlite(
    file: &Path,
    data_dir: &Path,
) -> anyhow::Result<keyturn_store::CopyCheck> {
    let existed = data_dir.exists();
    if existed {
        let mut entries = std::fs::read_dir(data_dir)
            .with_context(|| format!("cannot read {}", data_dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: restore into a new or empty data directory (the installation \
                 there is left as it is)",
                data_dir.display()
            );
        }
    }
    private_dir(data_dir)?;
    // Copied straight to its place: the directory held nothing, so nothing is replaced, and a
    // copy that fails the check is removed with its log files.
    let target = Store::sqlite_file(data_dir);
    let restored = async {
        let mut from =
            File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let mut to = create_private(&target)?;
        std::io::copy(&mut from, &mut to).context("cannot copy the backup")?;
        to.sync_all()?;
        drop(to);
        let store = Store::connect(
            &format!("sqlite://{}", target.display()),
            &StoreOptions::default(),
        )
        .await
        .context("not a SQLite database")?;
        let checked = store.check_sqlite_copy().await;
        store.close(std::time::Duration::from_secs(5)).await;
        checked.context("not a Keyturn database this version can restore")
    }
    .await;
    if restored.is_err() {
        for leftover in [target.clone(), wal_of(&target), shm_of(&target)] {
            let _ = std::fs::remove_file(leftover);
        }
        if !existed {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    restored
}

fn wal_of(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

fn shm_of(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-shm", db.display()))
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Rows per table, as a JSON object for the command's output.
pub fn counts_json(counts: &Counts) -> Value {
    Value::Object(
        counts
            .iter()
            .map(|(t, n)| ((*t).to_owned(), Value::from(*n)))
            .collect(),
    )
}
