//! Spare's local earnings ledger: an append-only, hash-chained SQLite file of
//! counterparty-signed receipts.
//!
//! Every entry is backed by a [`SignedReceipt`]: the counterparty's ed25519 signature
//! over the exact amount, units, network and payee. Appending a receipt whose
//! signature does not verify is refused. Entries are chained: each entry's hash is
//! BLAKE3 over the previous hash and the entry's canonical bytes, so [`Ledger::verify`]
//! can prove that nothing was altered, inserted or removed in the middle.
//!
//! The ledger does no networking and knows nothing of keys it does not verify; the
//! node decides what to append.

pub mod schema;
mod totals;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

pub use ::receipt::{
    EntryKind, MAX_AMOUNT, MAX_NETWORK_LEN, MAX_UNITS, MicroCredits, Network, PartyId, Receipt,
    ReceiptError, SIGNATURE_LEN, SignedReceipt, VerifiedReceipt, hex, unhex, verify_all,
    verify_batch, verify_batch_parallel,
};

/// Errors from opening, appending to and reading the ledger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger file does not exist (only from [`Ledger::open_existing`] and
    /// [`Ledger::open_read_only`]).
    #[error("no ledger at {0}: check the path, or run the node once to create it")]
    NotFound(PathBuf),
    /// The file is empty, so it holds no ledger (only from [`Ledger::open_read_only`]).
    #[error(
        "{0} is empty: it is not a Spare ledger; check the path (the node's ledger is \
         ledger.sqlite3 in its data folder); the file was left untouched"
    )]
    Empty(PathBuf),
    /// The file is not a SQLite database, or not a file at all (only from
    /// [`Ledger::open_read_only`]).
    #[error(
        "{path} is not a SQLite database ({found}), so not a Spare ledger: check the path; \
         the file was left untouched"
    )]
    NotSqlite {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        found: &'static str,
    },
    /// The file is a SQLite database without Spare's tables: another program's file
    /// (only from [`Ledger::open_read_only`]).
    #[error(
        "{path} is a SQLite database but not a Spare ledger ({missing}): check the path; \
         the file was left untouched"
    )]
    NotLedger {
        /// The file.
        path: PathBuf,
        /// What a ledger has and this file lacks.
        missing: String,
    },
    /// The file could not be opened as a SQLite database.
    #[error("cannot open ledger {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer Spare; it is never downgraded.
    #[error(
        "ledger schema version {found} is newer than this Spare understands (up to \
         {supported}): upgrade Spare to read it; the file was left untouched"
    )]
    NewerSchema {
        /// The file's `user_version`.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The file was written by an older Spare and has not been upgraded yet; reading
    /// it read-only cannot upgrade it (only from [`Ledger::open_read_only`]).
    #[error(
        "ledger schema version {found} is older than this Spare reads (version \
         {supported}): start the node once to upgrade it; the file was left untouched"
    )]
    OlderSchema {
        /// The file's `user_version`.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A write was asked of a ledger opened with [`Ledger::open_read_only`].
    #[error("the ledger {0} was opened read-only: nothing was written")]
    ReadOnly(PathBuf),
    /// A receipt in an append was refused; nothing of that append was written.
    #[error("receipt {index} of the append refused: {source}")]
    Refused {
        /// Position of the refused receipt in the batch (0 for a single append).
        index: usize,
        /// Why it was refused.
        source: ReceiptError,
    },
    /// The same receipt (time, counterparty and reference) is already in the ledger.
    #[error(
        "receipt {index} of the append refused: the receipt of counterparty {counterparty} \
         for reference {reference} is already in the ledger; a receipt is counted once"
    )]
    Duplicate {
        /// Position of the duplicate in the batch.
        index: usize,
        /// The counterparty.
        counterparty: PartyId,
        /// The repeated reference, in hex.
        reference: String,
    },
    /// A stored value could not be read back (the file was altered outside Spare).
    #[error("ledger entry {seq} is unreadable: {reason}; run `spare ledger verify`")]
    Corrupt {
        /// The entry's sequence number.
        seq: u64,
        /// What was wrong.
        reason: String,
    },
    /// SQLite failed.
    #[error("ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Writing an export failed.
    #[error("writing the export failed: {0}")]
    Export(#[from] csv::Error),
    /// Writing an export failed.
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
}

/// One ledger entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// The decoded receipt.
    pub receipt: Receipt,
    /// The receipt exactly as signed.
    pub signed: SignedReceipt,
    /// This entry's chain hash.
    pub hash: [u8; 32],
}

/// What an append wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number of the first entry written.
    pub first_seq: u64,
    /// Sequence number of the last entry written.
    pub last_seq: u64,
    /// The chain head after the append.
    pub head: [u8; 32],
}

/// The length of the calendar periods earnings are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Calendar days.
    Day,
    /// Weeks starting on Monday.
    Week,
    /// Calendar months.
    Month,
}

/// Earnings of one kind on one network in one period.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EarningsRow {
    /// First day of the period, in the time zone asked for.
    pub start: NaiveDate,
    /// The network.
    pub network: Network,
    /// The kind (and so the resource: GPU or bandwidth).
    pub kind: EntryKind,
    /// How many entries.
    pub entries: u64,
    /// Sum of their units.
    pub units: u64,
    /// Sum of their amounts.
    pub amount: MicroCredits,
}

/// All-time totals of one kind on one network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Total {
    /// The network.
    pub network: Network,
    /// The kind.
    pub kind: EntryKind,
    /// How many entries.
    pub entries: u64,
    /// Sum of their units.
    pub units: u64,
    /// Sum of their amounts.
    pub amount: MicroCredits,
}

/// The outcome of [`Ledger::verify`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Entries whose chain link and fields were checked.
    pub entries: u64,
    /// Signatures checked.
    pub signatures: u64,
    /// The first thing found wrong, if any; `None` means the ledger is intact.
    pub problem: Option<Problem>,
}

/// Something `verify` found wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The first bad entry's sequence number (0 for the earnings totals table).
    pub seq: u64,
    /// What is wrong with it, in a sentence.
    pub reason: String,
}

/// An open ledger file.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// Receipts verified together in one batch by `verify`.
const VERIFY_CHUNK: usize = 512;

impl Ledger {
    /// Opens the ledger at `path`, creating it (and upgrading its schema) as needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Self::open_with(path, OpenFlags::default())
    }

    /// Opens an existing ledger; a missing file is an error rather than a new ledger.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::NotFound(path.to_owned()));
        }
        let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
        Self::open_with(path, flags)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Self, Error> {
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        // Reading the version first turns "file is not a database" into a clear open
        // error, and refuses a newer file before anything (even WAL mode) is changed.
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_err)?;
        if version > schema::LATEST_VERSION {
            return Err(Error::NewerSchema {
                found: version,
                supported: schema::LATEST_VERSION,
            });
        }
        // WAL keeps readers (the dashboard) off the writer's back; FULL sync makes a
        // committed append survive power loss, not only a crash of the process.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            read_only: false,
        })
    }

    /// Opens an existing ledger for reading only: it never creates, migrates or writes
    /// the file, whatever the file turns out to be.
    ///
    /// A missing file, an empty one, one that is not SQLite, another program's SQLite
    /// file and a ledger of another schema version are each refused with an error
    /// that names the problem. Reading works while the node holds the ledger open for
    /// appends (WAL readers never block the writer); each read sees the entries
    /// committed when it began. Appends to a read-only ledger fail with
    /// [`Error::ReadOnly`].
    ///
    /// SQLite may create the ledger's `-wal` and `-shm` files beside it (they are how
    /// readers of a WAL file share its state); the ledger file itself is not changed.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        check_sqlite_file(path)?;
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        schema::check_current(&conn, path)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            read_only: true,
        })
    }

    /// The file this ledger lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the ledger was opened with [`Ledger::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The underlying connection, for tests and diagnostics that need raw SQL.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Appends one verified receipt.
    pub fn append(&mut self, receipt: &VerifiedReceipt) -> Result<Appended, Error> {
        self.append_batch(std::slice::from_ref(receipt))
    }

    /// Verifies signed receipts (in batches, across cores), then appends them in one
    /// transaction; the first refused receipt is named by its index and nothing is
    /// written.
    pub fn append_signed(&mut self, receipts: &[SignedReceipt]) -> Result<Appended, Error> {
        let verified =
            verify_all(receipts).map_err(|(index, source)| Error::Refused { index, source })?;
        self.append_batch(&verified)
    }

    /// Appends verified receipts in one transaction: all are written or none is.
    pub fn append_batch(&mut self, receipts: &[VerifiedReceipt]) -> Result<Appended, Error> {
        if self.read_only {
            return Err(Error::ReadOnly(self.path.clone()));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (last_seq, mut head) = head_of(&tx)?;
        let mut deltas = totals::Deltas::default();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO entries (seq, time_ms, kind, network, payee, counterparty, units, \
                 amount, reference, receipt, signature, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for (i, verified) in receipts.iter().enumerate() {
                let (r, signed) = (verified.receipt(), verified.signed());
                let seq = last_seq + 1 + i as u64;
                head = chain_hash(&head, seq, signed);
                let inserted = insert.execute(params![
                    seq as i64,
                    r.issued_at_ms,
                    r.kind.as_str(),
                    r.network.as_str(),
                    r.payee.as_bytes(),
                    r.counterparty.as_bytes(),
                    r.units as i64,
                    r.amount.0,
                    r.reference,
                    signed.bytes,
                    signed.signature,
                    head,
                ]);
                if let Err(e) = inserted {
                    return Err(duplicate_or(e, i, r));
                }
                deltas.add(
                    r.network.as_str(),
                    r.kind,
                    r.issued_at_ms,
                    r.units,
                    r.amount.0,
                );
            }
        }
        deltas.apply(&tx)?;
        tx.commit()?;
        Ok(Appended {
            first_seq: last_seq + 1,
            last_seq: last_seq + receipts.len() as u64,
            head,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> Result<u64, Error> {
        Ok(head_of(&self.conn)?.0)
    }

    /// True when nothing was ever appended.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Up to `limit` entries after `after_seq`, in chain order.
    pub fn entries(&self, after_seq: u64, limit: u32) -> Result<Vec<Entry>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, receipt, signature, hash FROM entries WHERE seq > ?1 ORDER BY seq \
             LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after_seq as i64, limit], RawEntry::from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.into_entry()?);
        }
        Ok(out)
    }

    /// Earnings per period, network and kind, for local dates in `since..=until`.
    ///
    /// Days are counted in the time zone `offset` (whole quarter hours, as every real
    /// zone is); weeks start on Monday. Rows come in period order.
    pub fn earnings(
        &self,
        period: Period,
        since: Option<NaiveDate>,
        until: Option<NaiveDate>,
        offset: FixedOffset,
    ) -> Result<Vec<EarningsRow>, Error> {
        totals::earnings(&self.conn, period, since, until, offset)
    }

    /// All-time totals per network and kind.
    pub fn totals(&self) -> Result<Vec<Total>, Error> {
        totals::totals(&self.conn)
    }

    /// Recomputes the hash chain, checks every stored column against its signed
    /// receipt, checks every signature, and recomputes the earnings totals.
    ///
    /// Reports the first bad entry rather than failing: a tampered ledger is a result,
    /// not an error. Errors are for a ledger that cannot be read at all.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        self.verify_with_progress(&mut |_, _| {})
    }

    /// [`verify`](Self::verify), telling `on_progress(checked, total)` how far it has got
    /// after each batch of signatures (`total`: the entries when it began).
    pub fn verify_with_progress(
        &self,
        on_progress: &mut dyn FnMut(u64, u64),
    ) -> Result<VerifyReport, Error> {
        let tx = self.conn.unchecked_transaction()?; // one consistent snapshot
        let total: u64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM entries", [], |r| {
            r.get::<_, i64>(0)
        })? as u64;
        let mut stmt = tx.prepare(
            "SELECT seq, time_ms, kind, network, payee, counterparty, units, amount, \
             reference, receipt, signature, hash FROM entries ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut report = VerifyReport {
            entries: 0,
            signatures: 0,
            problem: None,
        };
        let mut prev = GENESIS;
        let mut chunk: Vec<(u64, Receipt, SignedReceipt)> = Vec::with_capacity(VERIFY_CHUNK);
        let mut structural = None;
        while let Some(row) = rows.next()? {
            let stored = StoredRow::from_row(row)?;
            match stored.check(report.entries + 1, &prev) {
                Ok((receipt, signed, hash)) => {
                    prev = hash;
                    report.entries += 1;
                    chunk.push((stored.seq, receipt, signed));
                }
                Err(problem) => {
                    structural = Some(problem);
                    break;
                }
            }
            if chunk.len() == VERIFY_CHUNK {
                report.signatures += chunk.len() as u64;
                if let Some(problem) = first_bad_signature(&chunk) {
                    report.problem = Some(problem);
                    return Ok(report);
                }
                chunk.clear();
                on_progress(report.signatures, total);
            }
        }
        // Signatures of the entries before a structural problem come first in the
        // chain, so they are checked before that problem is reported.
        report.signatures += chunk.len() as u64;
        report.problem = first_bad_signature(&chunk).or(structural);
        if report.problem.is_some() {
            return Ok(report);
        }
        drop(rows);
        drop(stmt);
        on_progress(report.signatures, total);
        report.problem = totals::check(&tx)?;
        Ok(report)
    }

    /// Writes every entry as CSV, with amounts as exact decimals and the receipts and
    /// signatures in hex so the export can be verified elsewhere. Returns the row count.
    pub fn export_csv<W: Write>(&self, out: W) -> Result<u64, Error> {
        let mut csv = csv::Writer::from_writer(out);
        csv.write_record([
            "seq",
            "time_utc",
            "kind",
            "network",
            "units",
            "unit",
            "amount_micro",
            "amount",
            "counterparty",
            "payee",
            "reference",
            "receipt",
            "signature",
            "hash",
        ])?;
        let mut after = 0;
        let mut count = 0;
        loop {
            let page = self.entries(after, 10_000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                let r = &e.receipt;
                csv.write_record([
                    e.seq.to_string(),
                    format_utc(r.issued_at_ms),
                    r.kind.to_string(),
                    r.network.to_string(),
                    r.units.to_string(),
                    r.kind.unit_name().to_owned(),
                    r.amount.0.to_string(),
                    r.amount.to_string(),
                    r.counterparty.to_string(),
                    r.payee.to_string(),
                    hex(&r.reference),
                    hex(&e.signed.bytes),
                    hex(&e.signed.signature),
                    hex(&e.hash),
                ])?;
                count += 1;
            }
        }
        csv.flush()?;
        Ok(count)
    }
}

/// Refuses, before SQLite sees it, a path that is missing, not a regular file, empty,
/// or does not begin with SQLite's header. SQLite would take an empty file for a new
/// database, and opening a FIFO or a device could block or read forever.
fn check_sqlite_file(path: &Path) -> Result<(), Error> {
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let not_sqlite = |found| Error::NotSqlite {
        path: path.to_owned(),
        found,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound(path.to_owned()));
        }
        Err(e) => return Err(Error::Io(e)),
    };
    if meta.is_dir() {
        return Err(not_sqlite("it is a directory"));
    }
    if !meta.is_file() {
        return Err(not_sqlite(
            "it is a device, FIFO or socket, not a regular file",
        ));
    }
    if meta.len() == 0 {
        return Err(Error::Empty(path.to_owned()));
    }
    let mut header = [0; MAGIC.len()];
    let mut file = std::fs::File::open(path)?;
    match std::io::Read::read_exact(&mut file, &mut header) {
        Ok(()) if &header == MAGIC => Ok(()),
        Ok(()) => Err(not_sqlite("it does not begin with SQLite's header")),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(not_sqlite("it is shorter than SQLite's header"))
        }
        Err(e) => Err(Error::Io(e)),
    }
}

/// The chain link: BLAKE3 over the previous hash, the sequence number and the entry's
/// canonical bytes (the signed receipt and its signature, each length-prefixed).
pub fn chain_hash(prev: &[u8; 32], seq: u64, signed: &SignedReceipt) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"spare-ledger-entry-v1");
    h.update(prev);
    h.update(&seq.to_be_bytes());
    h.update(&(signed.bytes.len() as u32).to_be_bytes());
    h.update(&signed.bytes);
    h.update(&signed.signature);
    *h.finalize().as_bytes()
}

/// Formats milliseconds since the epoch as RFC 3339 UTC.
pub fn format_utc(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| format!("{ms}ms"))
}

/// Names a replayed receipt; passes other SQLite errors on.
fn duplicate_or(e: rusqlite::Error, index: usize, r: &Receipt) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) if e.to_string().contains("entries.") => {
            Error::Duplicate {
                index,
                counterparty: r.counterparty,
                reference: hex(&r.reference),
            }
        }
        _ => Error::Sqlite(e),
    }
}

fn first_bad_signature(chunk: &[(u64, Receipt, SignedReceipt)]) -> Option<Problem> {
    let messages: Vec<&[u8]> = chunk.iter().map(|(_, _, s)| s.bytes.as_slice()).collect();
    let signatures: Vec<[u8; 64]> = chunk.iter().map(|(_, _, s)| s.signature).collect();
    let keys: Vec<PartyId> = chunk.iter().map(|(_, r, _)| r.counterparty).collect();
    if verify_batch_parallel(&messages, &signatures, &keys) {
        return None;
    }
    chunk.iter().find_map(|(seq, _, signed)| {
        signed.verify().err().map(|e| Problem {
            seq: *seq,
            reason: e.to_string(),
        })
    })
}

fn head_of(conn: &Connection) -> Result<(u64, [u8; 32]), Error> {
    let head = conn
        .query_row(
            "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?;
    let Some((seq, hash)) = head else {
        return Ok((0, GENESIS));
    };
    let hash: [u8; 32] = hash.try_into().map_err(|_| Error::Corrupt {
        seq: seq as u64,
        reason: "stored hash is not 32 bytes".into(),
    })?;
    Ok((seq as u64, hash))
}

struct RawEntry {
    seq: u64,
    receipt: Vec<u8>,
    signature: Vec<u8>,
    hash: Vec<u8>,
}

impl RawEntry {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get::<_, i64>(0)? as u64,
            receipt: row.get(1)?,
            signature: row.get(2)?,
            hash: row.get(3)?,
        })
    }

    fn into_entry(self) -> Result<Entry, Error> {
        let corrupt = |reason: String| Error::Corrupt {
            seq: self.seq,
            reason,
        };
        let signature: [u8; 64] = self
            .signature
            .clone()
            .try_into()
            .map_err(|_| corrupt("signature is not 64 bytes".into()))?;
        let hash: [u8; 32] = self
            .hash
            .clone()
            .try_into()
            .map_err(|_| corrupt("hash is not 32 bytes".into()))?;
        let receipt = Receipt::from_bytes(&self.receipt).map_err(|e| corrupt(e.to_string()))?;
        Ok(Entry {
            seq: self.seq,
            receipt,
            signed: SignedReceipt {
                bytes: self.receipt,
                signature,
            },
            hash,
        })
    }
}

/// Every column of an entry row, as stored, for `verify`.
struct StoredRow {
    seq: u64,
    time_ms: i64,
    kind: String,
    network: String,
    payee: Vec<u8>,
    counterparty: Vec<u8>,
    units: i64,
    amount: i64,
    reference: Vec<u8>,
    receipt: Vec<u8>,
    signature: Vec<u8>,
    hash: Vec<u8>,
}

impl StoredRow {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get::<_, i64>(0)? as u64,
            time_ms: row.get(1)?,
            kind: row.get(2)?,
            network: row.get(3)?,
            payee: row.get(4)?,
            counterparty: row.get(5)?,
            units: row.get(6)?,
            amount: row.get(7)?,
            reference: row.get(8)?,
            receipt: row.get(9)?,
            signature: row.get(10)?,
            hash: row.get(11)?,
        })
    }

    /// Checks everything but the signature; returns the decoded receipt and the hash.
    fn check(
        &self,
        expected_seq: u64,
        prev: &[u8; 32],
    ) -> Result<(Receipt, SignedReceipt, [u8; 32]), Problem> {
        let problem = |reason: String| Problem {
            seq: self.seq,
            reason,
        };
        if self.seq != expected_seq {
            return Err(Problem {
                seq: expected_seq,
                reason: format!(
                    "entry {expected_seq} is missing (next stored entry is {}): entries were \
                     removed",
                    self.seq
                ),
            });
        }
        let receipt = Receipt::from_bytes(&self.receipt)
            .map_err(|e| problem(format!("stored receipt is malformed: {e}")))?;
        let signature: [u8; 64] = self
            .signature
            .clone()
            .try_into()
            .map_err(|_| problem("stored signature is not 64 bytes".into()))?;
        let signed = SignedReceipt {
            bytes: self.receipt.clone(),
            signature,
        };
        let mismatches: Vec<&str> = [
            ("time_ms", self.time_ms == receipt.issued_at_ms),
            ("kind", self.kind == receipt.kind.as_str()),
            ("network", self.network == receipt.network.as_str()),
            ("payee", self.payee == receipt.payee.as_bytes()),
            (
                "counterparty",
                self.counterparty == receipt.counterparty.as_bytes(),
            ),
            ("units", self.units as u64 == receipt.units),
            ("amount", self.amount == receipt.amount.0),
            ("reference", self.reference == receipt.reference),
        ]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
        if !mismatches.is_empty() {
            return Err(problem(format!(
                "column(s) {} differ from the signed receipt: the row was altered",
                mismatches.join(", ")
            )));
        }
        let hash = chain_hash(prev, self.seq, &signed);
        if self.hash != hash {
            return Err(problem(
                "chain hash does not match: the entry or one before it was altered".into(),
            ));
        }
        Ok((receipt, signed, hash))
    }
}
