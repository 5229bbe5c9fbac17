//! The inference quota's ledger: the bookkeeping behind [`Platform::reserve_inferences`] and
//! [`Platform::settle_inferences`], shared by every platform. A platform keeps one ledger per
//! [`ModelScope`](crate::platform::ModelScope) durably and changes it in one atomic step per
//! call (a locked file on Linux, an RPMB object on OP-TEE); how it is stored, and what a
//! reservation's holder is (a process on Linux, nothing in a TA), stay with the platform.
//!
//! The rules: a reservation starts where the inferences used plus those reserved by open
//! reservations end, and grants what is left of the quota up to what was asked, so open
//! reservations never overlap and never exceed the quota together; settling counts what the
//! session used (at most what it was granted) and gives the rest back; a reservation that is
//! never settled stays counted whole.
//!
//! [`Platform::reserve_inferences`]: crate::Platform::reserve_inferences
//! [`Platform::settle_inferences`]: crate::Platform::settle_inferences

use alloc::vec::Vec;

use crate::platform::Reservation;

/// An open reservation and who holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open<H> {
    /// The reservation as granted.
    pub reservation: Reservation,
    /// Its holder (the platform's notion: a process, or `()`).
    pub holder: H,
}

/// [`Ledger::reserve`] refused: `max_open` reservations are open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerFull {
    /// How many were open.
    pub open: usize,
}

impl core::fmt::Display for LedgerFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} reservations are already open", self.open)
    }
}

/// One scope's quota state: inferences used for ever, the next reservation id, and the open
/// reservations in the order they were granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ledger<H> {
    /// Inferences counted as used (settled, or retired whole).
    pub used: u64,
    /// The id the next reservation gets.
    pub next: u64,
    /// The open reservations, oldest first.
    pub open: Vec<Open<H>>,
}

impl<H> Default for Ledger<H> {
    fn default() -> Self {
        Self {
            used: 0,
            next: 0,
            open: Vec::new(),
        }
    }
}

impl<H> Ledger<H> {
    /// Used plus every open reservation: where the next reservation starts.
    pub fn committed(&self) -> u64 {
        self.open.iter().fold(self.used, |sum, o| {
            sum.saturating_add(o.reservation.granted)
        })
    }

    /// What a reservation of up to `wanted` against `quota` would grant now.
    fn grantable(&self, wanted: u64, quota: u64) -> u64 {
        wanted.min(quota.saturating_sub(self.committed()))
    }

    /// Records a reservation of `granted` (none when it is 0) and returns it.
    fn record(&mut self, granted: u64, holder: H) -> Reservation {
        let reservation = Reservation {
            id: self.next,
            start: self.committed(),
            granted,
        };
        if granted > 0 {
            self.next = self.next.wrapping_add(1);
            self.open.push(Open {
                reservation,
                holder,
            });
        }
        reservation
    }

    /// Reserves up to `wanted` inferences against `quota` for `holder`; refuses when
    /// `max_open` reservations are open. A reservation that grants nothing (the quota is
    /// exhausted) is returned but not recorded, so the ledger changed exactly when the result
    /// grants more than 0.
    pub fn reserve(
        &mut self,
        wanted: u64,
        quota: u64,
        holder: H,
        max_open: usize,
    ) -> Result<Reservation, LedgerFull> {
        let granted = self.grantable(wanted, quota);
        if granted > 0 && self.open.len() >= max_open {
            return Err(LedgerFull {
                open: self.open.len(),
            });
        }
        Ok(self.record(granted, holder))
    }

    /// Like [`Ledger::reserve`], but when `max_open` reservations are open, the oldest are
    /// counted as used whole and closed to make room: for a platform that cannot tell whether
    /// a holder is still alive (a session that never settled is counted so anyway).
    pub fn reserve_retiring_oldest(
        &mut self,
        wanted: u64,
        quota: u64,
        holder: H,
        max_open: usize,
    ) -> Reservation {
        let granted = self.grantable(wanted, quota);
        if granted > 0 {
            while !self.open.is_empty() && self.open.len() >= max_open {
                let oldest = self.open.remove(0);
                // Moves granted inferences to `used`: where the next one starts is unchanged.
                self.used = self.used.saturating_add(oldest.reservation.granted);
            }
        }
        self.record(granted, holder)
    }

    /// Ends `reservation`: `used` of it (at most what it granted) is counted as used, the rest
    /// goes back to the quota. A reservation that is not open (retired, or never granted) stays
    /// as it is counted. Returns whether the ledger changed.
    pub fn settle(&mut self, reservation: Reservation, used: u64) -> bool {
        let Some(at) = self.open.iter().position(|o| o.reservation == reservation) else {
            return false;
        };
        let open = self.open.remove(at);
        self.used = self.used.saturating_add(used.min(open.reservation.granted));
        true
    }

    /// Counts the reservations whose holder is `gone` as used whole and closes them. Returns
    /// whether any was.
    pub fn retire(&mut self, mut gone: impl FnMut(&H) -> bool) -> bool {
        let before = self.open.len();
        let mut used = self.used;
        self.open.retain(|o| {
            let keep = !gone(&o.holder);
            if !keep {
                used = used.saturating_add(o.reservation.granted);
            }
            keep
        });
        self.used = used;
        self.open.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_disjoint_and_never_exceed_the_quota() {
        let mut ledger = Ledger::default();
        let a = ledger.reserve(40, 100, 'a', 8).unwrap();
        let b = ledger.reserve(40, 100, 'b', 8).unwrap();
        let c = ledger.reserve(40, 100, 'c', 8).unwrap();
        assert_eq!((a.start, a.granted), (0, 40));
        assert_eq!((b.start, b.granted), (40, 40));
        assert_eq!((c.start, c.granted), (80, 20));
        assert_eq!(ledger.committed(), 100);
        // Exhausted: a reservation granting nothing, not recorded.
        let d = ledger.reserve(5, 100, 'd', 8).unwrap();
        assert_eq!(d.granted, 0);
        assert_eq!(ledger.open.len(), 3);
        assert_eq!([a.id, b.id, c.id], [0, 1, 2]);
    }

    #[test]
    fn settling_returns_the_unused_part_once() {
        let mut ledger = Ledger::default();
        let a = ledger.reserve(50, 60, (), 8).unwrap();
        assert!(ledger.settle(a, 10));
        assert_eq!((ledger.used, ledger.committed()), (10, 10));
        // A second settle, or a forged one, changes nothing.
        assert!(!ledger.settle(a, 0));
        let forged = Reservation { granted: 1000, ..a };
        assert!(!ledger.settle(forged, 0));
        // More used than granted counts as granted.
        let b = ledger.reserve(50, 60, (), 8).unwrap();
        assert_eq!((b.start, b.granted), (10, 50));
        assert!(ledger.settle(b, 999));
        assert_eq!(ledger.used, 60);
    }

    #[test]
    fn a_full_ledger_refuses_or_retires_the_oldest_whole() {
        let mut ledger = Ledger::default();
        for _ in 0..2 {
            ledger.reserve(10, 100, (), 2).unwrap();
        }
        assert_eq!(ledger.reserve(10, 100, (), 2), Err(LedgerFull { open: 2 }));
        // Nothing to grant: no refusal, nothing recorded.
        let mut spent = Ledger::default();
        spent.reserve(10, 10, (), 1).unwrap();
        assert_eq!(spent.reserve(1, 10, (), 1).unwrap().granted, 0);

        let first = ledger.open[0].reservation;
        let c = ledger.reserve_retiring_oldest(10, 100, (), 2);
        assert_eq!((c.start, c.granted), (20, 10));
        assert_eq!(ledger.used, 10);
        assert!(
            !ledger.settle(first, 0),
            "a retired reservation stays counted whole"
        );
        assert_eq!(ledger.committed(), 30);
    }

    #[test]
    fn gone_holders_are_counted_whole() {
        let mut ledger = Ledger::default();
        ledger.reserve(5, 100, 1u32, 8).unwrap();
        let live = ledger.reserve(7, 100, 2u32, 8).unwrap();
        assert!(ledger.retire(|&pid| pid == 1));
        assert!(!ledger.retire(|&pid| pid == 1));
        assert_eq!((ledger.used, ledger.committed()), (5, 12));
        assert!(ledger.settle(live, 3));
        assert_eq!(ledger.committed(), 8);
    }
}
