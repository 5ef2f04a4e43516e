//! The TypeScript types of everything the commands and the event carry, generated from
//! the Rust types with ts-rs into `ui/src/bindings/`. A test fails when the committed
//! files differ from what the Rust types generate; `UPDATE_BINDINGS=1 cargo test -p
//! spare-app bindings` rewrites them.

use std::path::Path;

use ts_rs::{Config as TsConfig, ExportError, TS};

/// Writes every binding (and the types they use) into `dir`.
pub fn export(dir: &Path) -> Result<(), ExportError> {
    // JSON numbers: every integer the node sends fits in 2^53 (micro-credits, bytes,
    // sequence numbers).
    let cfg = TsConfig::new().with_large_int("number").with_out_dir(dir);
    node::Status::export_all(&cfg)?;
    // Inlined in the status (serde flatten), and named by the dashboard too.
    node::ResourceState::export_all(&cfg)?;
    signals::MachineReading::export_all(&cfg)?;
    node::PauseFor::export_all(&cfg)?;
    node::Target::export_all(&cfg)?;
    node::config::Config::export_all(&cfg)?;
    node::doctor::Check::export_all(&cfg)?;
    node::earnings::Report::export_all(&cfg)?;
    node::ledger_view::EntryView::export_all(&cfg)?;
    node::logs::LogView::export_all(&cfg)?;
    node::ledger_view::VerifyView::export_all(&cfg)?;
    crate::error::CommandError::export_all(&cfg)?;
    crate::updates::UpdateCheck::export_all(&cfg)?;
    crate::pump::NodeDown::export_all(&cfg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn read_dir(dir: &Path) -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ts"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect()
    }

    use super::*;

    #[test]
    fn the_committed_bindings_are_what_the_rust_types_generate() {
        let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings");
        let fresh = tempfile::tempdir().unwrap();
        export(fresh.path()).unwrap();
        let fresh = read_dir(fresh.path());
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            for name in read_dir(&committed).keys() {
                std::fs::remove_file(committed.join(name)).unwrap();
            }
            for (name, text) in &fresh {
                std::fs::write(committed.join(name), text).unwrap();
            }
        }
        let old = read_dir(&committed);
        let stale: Vec<_> = fresh
            .iter()
            .filter(|(name, text)| old.get(*name) != Some(text))
            .map(|(name, _)| name.as_str())
            .chain(
                old.keys()
                    .filter(|name| !fresh.contains_key(*name))
                    .map(String::as_str),
            )
            .collect();
        assert!(
            stale.is_empty(),
            "ui/src/bindings is stale ({}): run `UPDATE_BINDINGS=1 cargo test -p spare-app \
             bindings` and commit the result",
            stale.join(", ")
        );
    }
}
