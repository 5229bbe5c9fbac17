//! Monotonic counters and inference reservations kept in files, per [`ModelScope`] (vendor
//! key id and model id).
//!
//! Files live in one directory, named by the first 16 bytes of [`ModelScope::digest`] (hex):
//!
//! - `SCOPE.lock`: an empty file; every change of the scope's counters happens under an
//!   exclusive `flock` on it, so a read-modify-write never interleaves with another one (other
//!   processes, or other threads of the platform service).
//! - `SCOPE.epoch`: the highest licence revocation epoch seen, one decimal number, only raised.
//! - `SCOPE.inferences`: the quota's state, lines of text:
//!
//!   ```text
//!   used N                                  ; inferences used, never lowered
//!   next N                                  ; the next reservation id
//!   open ID PID STARTTIME START GRANTED     ; one per open reservation
//!   ```
//!
//! Each change is written to a uniquely named temporary file, synced and renamed over the old
//! file, then the directory is synced ([`write_atomic`]): a crash leaves the old state or the
//! new one. A missing file reads as 0 (and no open reservation).
//!
//! [`Counters::reserve`] grants a private range of `min(wanted, quota - used - reserved)`
//! inferences; [`Counters::settle`] adds what the session used (at most what it was granted)
//! to `used` and drops the reservation, so the rest goes back to the quota. A reservation whose
//! holder process is gone (its pid is not running, or runs a later process: the start time
//! from `/proc/PID/stat` differs) is folded into `used` whole at the next reservation: a
//! crashed session's block is counted, never handed out twice. The inferences counter as read
//! ([`Counters::get`]) is `used` plus every open reservation.
//!
//! The host could delete or roll back these files: on Linux the counters protect against a
//! stale sealed blob being replayed by mistake and against concurrent sessions overrunning a
//! quota, not against the device's owner (TrustZone backends keep them in secure storage).

use omg_protocol::hex;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use omg_enclave::ledger::{Ledger, Open};
use omg_enclave::platform::{Counter, ModelScope, Reservation};

use crate::fs::{create_private_dir, read_limited, write_atomic};

/// Most reservations open at once per scope (one per running session).
pub const MAX_OPEN_RESERVATIONS: usize = 1024;
/// Largest state file read.
const MAX_STATE_LEN: u64 = 64 << 10;

/// A directory of counters.
#[derive(Debug, Clone)]
pub struct Counters {
    dir: PathBuf,
}

/// The process holding a reservation: its pid and its start time (clock ticks after boot,
/// field 22 of `/proc/PID/stat`), so that a later process given the same pid is not taken for
/// the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The process id.
    pub pid: u32,
    /// The process's start time.
    pub start_time: u64,
}

impl Holder {
    /// The process `pid` as it runs now, if it does.
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold anything; the fields after
        // its last ')' start with field 3, so the start time (22) is the 20th of them.
        let rest = &stat[stat.rfind(')')? + 1..];
        let start_time = rest.split_whitespace().nth(19)?.parse().ok()?;
        Some(Self { pid, start_time })
    }

    /// This process.
    pub fn current() -> io::Result<Self> {
        Self::of(std::process::id()).ok_or_else(|| {
            io::Error::other("cannot read this process's start time from /proc/self/stat")
        })
    }

    /// Whether the holder still runs.
    fn is_alive(&self) -> bool {
        Self::of(self.pid) == Some(*self)
    }
}

/// A scope's quota state as the `SCOPE.inferences` file holds it.
type Quota = Ledger<Holder>;

/// Parses the state file's text (see the module documentation); `None` if it is not that.
fn parse_quota(text: &str) -> Option<Quota> {
    let mut state = Quota::default();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let key = words.next()?;
        let numbers = words
            .map(|w| w.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?;
        match (key, numbers.as_slice()) {
            ("used", &[n]) => state.used = n,
            ("next", &[n]) => state.next = n,
            ("open", &[id, pid, start_time, start, granted]) => state.open.push(Open {
                reservation: Reservation { id, start, granted },
                holder: Holder {
                    pid: u32::try_from(pid).ok()?,
                    start_time,
                },
            }),
            _ => return None,
        }
    }
    Some(state)
}

/// The state file's text for `state`.
fn quota_text(state: &Quota) -> String {
    let mut out = format!("used {}\nnext {}\n", state.used, state.next);
    for o in &state.open {
        let r = o.reservation;
        out.push_str(&format!(
            "open {} {} {} {} {}\n",
            r.id, o.holder.pid, o.holder.start_time, r.start, r.granted
        ));
    }
    out
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Counters {
    /// Counters in `dir` (created on first write).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, scope: ModelScope<'_>, kind: &str) -> PathBuf {
        let id = hex::encode(&scope.digest()[..16]);
        self.dir.join(format!("{id}.{kind}"))
    }

    fn file_path(&self, scope: ModelScope<'_>, counter: Counter) -> PathBuf {
        self.path(
            scope,
            match counter {
                Counter::Epoch => "epoch",
                Counter::Inferences => "inferences",
            },
        )
    }

    /// Takes the scope's exclusive lock, waiting for it; it is held until the returned file
    /// is closed.
    fn lock(&self, scope: ModelScope<'_>) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        create_private_dir(&self.dir).map_err(|e| with_path(&self.dir, e))?;
        let path = self.path(scope, "lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| with_path(&path, e))?;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(file),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(with_path(&path, e.into())),
            }
        }
    }

    fn read(path: &Path) -> io::Result<Option<String>> {
        match read_limited(path, MAX_STATE_LEN) {
            Ok(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| invalid(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_path(path, e)),
        }
    }

    fn write(path: &Path, text: &str) -> io::Result<()> {
        write_atomic(path, text.as_bytes(), 0o600).map_err(|e| with_path(path, e))
    }

    fn epoch(path: &Path) -> io::Result<u64> {
        match Self::read(path)? {
            Some(text) => text.trim().parse().map_err(|_| invalid(path)),
            None => Ok(0),
        }
    }

    fn quota(path: &Path) -> io::Result<Quota> {
        match Self::read(path)? {
            Some(text) => parse_quota(&text).ok_or_else(|| invalid(path)),
            None => Ok(Quota::default()),
        }
    }

    /// The counter's value (0 if never written): the epoch, or the inferences used plus
    /// those reserved by open reservations.
    pub fn get(&self, scope: ModelScope<'_>, counter: Counter) -> io::Result<u64> {
        let path = self.file_path(scope, counter);
        match counter {
            Counter::Epoch => Self::epoch(&path),
            Counter::Inferences => Ok(Self::quota(&path)?.committed()),
        }
    }

    /// Raises the epoch counter to at least `value`, durably; returns its value afterwards.
    pub fn raise_epoch(&self, scope: ModelScope<'_>, value: u64) -> io::Result<u64> {
        let _lock = self.lock(scope)?;
        let path = self.file_path(scope, Counter::Epoch);
        let current = Self::epoch(&path)?;
        if value <= current {
            return Ok(current);
        }
        Self::write(&path, &format!("{value}\n"))?;
        Ok(value)
    }

    /// Reserves up to `wanted` inferences against `quota` for `holder`, durably: the range
    /// starts at the inferences used plus reserved so far, and holds what is left of the quota
    /// up to `wanted` (0 when nothing is; such a reservation is not recorded).
    pub fn reserve(
        &self,
        scope: ModelScope<'_>,
        wanted: u64,
        quota: u64,
        holder: Holder,
    ) -> io::Result<Reservation> {
        let _lock = self.lock(scope)?;
        let path = self.file_path(scope, Counter::Inferences);
        let mut state = Self::quota(&path)?;
        let retired = state.retire(|holder| !holder.is_alive());
        let reservation = state
            .reserve(wanted, quota, holder, MAX_OPEN_RESERVATIONS)
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        if reservation.granted > 0 || retired {
            Self::write(&path, &quota_text(&state))?;
        }
        Ok(reservation)
    }

    /// Ends `reservation`: `used` of it (at most what it granted) is added to the inferences
    /// used, the rest goes back to the quota. A reservation that is no longer open (folded
    /// whole after its holder was taken for gone) stays counted whole.
    pub fn settle(
        &self,
        scope: ModelScope<'_>,
        reservation: Reservation,
        used: u64,
    ) -> io::Result<()> {
        let _lock = self.lock(scope)?;
        let path = self.file_path(scope, Counter::Inferences);
        let mut state = Self::quota(&path)?;
        if state.settle(reservation, used) {
            Self::write(&path, &quota_text(&state))?;
        }
        Ok(())
    }
}

fn invalid(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: not a counter state", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VENDOR: [u8; 16] = [7; 16];

    fn scope() -> ModelScope<'static> {
        ModelScope {
            vendor: VENDOR,
            model_id: "m",
        }
    }

    /// Threads of one process (as in the platform service) and separate `Counters` values
    /// (as separate processes) hammer one quota: the ranges granted never overlap, the total
    /// used never exceeds the quota, no write fails, and used equals what was settled.
    #[test]
    fn concurrent_reservations_never_exceed_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        const QUOTA: u64 = 400;
        let holder = Holder::current().unwrap();
        let results: Vec<(u64, Vec<(u64, u64)>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let counters = Counters::new(dir.path());
                    s.spawn(move || {
                        let (mut used, mut ranges) = (0u64, Vec::new());
                        loop {
                            let r = counters.reserve(scope(), 7 + t, QUOTA, holder).unwrap();
                            if r.granted == 0 {
                                return (used, ranges);
                            }
                            ranges.push((r.start, r.granted));
                            // Each thread gives back up to 2 of each block, using at least 1.
                            let u = r.granted - (t % 3).min(r.granted - 1);
                            counters.settle(scope(), r, u).unwrap();
                            used += u;
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let used: u64 = results.iter().map(|(u, _)| u).sum();
        let counters = Counters::new(dir.path());
        assert_eq!(counters.get(scope(), Counter::Inferences).unwrap(), used);
        assert!(used <= QUOTA, "{used} used of {QUOTA}");
        // Every thread stopped only when the quota was fully committed at that moment.
        assert!(used > QUOTA - 8 * 3, "{used} used of {QUOTA}");
        for (_, ranges) in &results {
            for &(start, granted) in ranges {
                assert!(start + granted <= QUOTA);
            }
        }
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Open reservations are private: while one is held, a second one starts after it and
    /// both fit in the quota; unused inferences come back when settled.
    #[test]
    fn reservations_are_private_and_unused_ones_return() {
        let dir = tempfile::tempdir().unwrap();
        let counters = Counters::new(dir.path());
        let holder = Holder::current().unwrap();
        let a = counters.reserve(scope(), 60, 100, holder).unwrap();
        let b = counters.reserve(scope(), 60, 100, holder).unwrap();
        assert_eq!((a.start, a.granted), (0, 60));
        assert_eq!((b.start, b.granted), (60, 40));
        assert_eq!(
            counters.reserve(scope(), 60, 100, holder).unwrap().granted,
            0
        );
        counters.settle(scope(), a, 10).unwrap();
        counters.settle(scope(), b, 40).unwrap();
        assert_eq!(counters.get(scope(), Counter::Inferences).unwrap(), 50);
        // Settling twice counts nothing more.
        counters.settle(scope(), b, 40).unwrap();
        assert_eq!(counters.get(scope(), Counter::Inferences).unwrap(), 50);
        let c = counters.reserve(scope(), 60, 100, holder).unwrap();
        assert_eq!((c.start, c.granted), (50, 50));
    }

    /// A reservation whose holder is gone is counted whole, never granted again.
    #[test]
    fn a_dead_holders_reservation_is_counted_whole() {
        let dir = tempfile::tempdir().unwrap();
        let counters = Counters::new(dir.path());
        let me = Holder::current().unwrap();
        // This pid with another start time: a process that ran before under the same pid.
        let gone = Holder {
            start_time: me.start_time + 1,
            ..me
        };
        let r = counters.reserve(scope(), 30, 100, gone).unwrap();
        assert_eq!(r.granted, 30);
        let next = counters.reserve(scope(), 100, 100, me).unwrap();
        assert_eq!((next.start, next.granted), (30, 70));
        // The folded reservation's late settle does not lower the count.
        counters.settle(scope(), r, 0).unwrap();
        counters.settle(scope(), next, 0).unwrap();
        assert_eq!(counters.get(scope(), Counter::Inferences).unwrap(), 30);
    }

    /// The epoch only goes up, under the same lock, and scopes of two vendors with the same
    /// model id are separate.
    #[test]
    fn epochs_rise_only_and_scopes_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let counters = Counters::new(dir.path());
        let other = ModelScope {
            vendor: [8; 16],
            model_id: "m",
        };
        assert_eq!(counters.raise_epoch(scope(), 5).unwrap(), 5);
        assert_eq!(counters.raise_epoch(scope(), 3).unwrap(), 5);
        assert_eq!(counters.raise_epoch(other, u64::MAX).unwrap(), u64::MAX);
        assert_eq!(counters.get(scope(), Counter::Epoch).unwrap(), 5);
        assert_eq!(counters.get(other, Counter::Epoch).unwrap(), u64::MAX);
    }

    #[test]
    fn state_text_round_trips_and_garbage_is_refused() {
        let state = Quota {
            used: 12,
            next: 3,
            open: vec![Open {
                reservation: Reservation {
                    id: 2,
                    start: 12,
                    granted: 250,
                },
                holder: Holder {
                    pid: 42,
                    start_time: 99,
                },
            }],
        };
        assert_eq!(parse_quota(&quota_text(&state)), Some(state));
        assert_eq!(parse_quota("used x\n"), None);
        assert_eq!(parse_quota("open 1 2\n"), None);
        assert_eq!(parse_quota("spent 1\n"), None);
    }
}
