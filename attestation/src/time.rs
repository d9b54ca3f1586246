//! Time, injected. Verification reads no clock: every check that depends on time (certificate
//! validity periods, result expiry) takes a [`UnixTime`] from its caller, so a test, an offline
//! check "as of" another time (`confidant evidence verify --at`) and a service use the same code.

use x509_parser::prelude::X509Certificate;

/// A point in time: whole seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(u64);

impl UnixTime {
    /// `secs` seconds after 1970-01-01T00:00:00Z.
    pub const fn from_secs(secs: u64) -> Self {
        UnixTime(secs)
    }

    /// Seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (Unix seconds)", self.0)
    }
}

/// A closed interval of time, as an X.509 `Validity` (RFC 5280 §4.1.2.5: both bounds inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: UnixTime,
    pub not_after: UnixTime,
}

impl Validity {
    /// Every representable time (what evidence without certificates, a TPM quote, is valid for).
    pub const ALWAYS: Validity = Validity {
        not_before: UnixTime(0),
        not_after: UnixTime(u64::MAX),
    };

    /// Whether `t` lies in the interval.
    pub fn contains(&self, t: UnixTime) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    /// The times both intervals contain (empty intervals stay empty: `not_before > not_after`).
    pub fn intersect(self, other: Validity) -> Validity {
        Validity {
            not_before: self.not_before.max(other.not_before),
            not_after: self.not_after.min(other.not_after),
        }
    }

    /// A certificate's validity period. Times before the epoch count as the epoch.
    pub(crate) fn of_certificate(cert: &X509Certificate<'_>) -> Validity {
        let secs = |t: i64| UnixTime(u64::try_from(t).unwrap_or(0));
        let v = cert.validity();
        Validity {
            not_before: secs(v.not_before.timestamp()),
            not_after: secs(v.not_after.timestamp()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        let v = Validity {
            not_before: UnixTime::from_secs(10),
            not_after: UnixTime::from_secs(20),
        };
        assert!(!v.contains(UnixTime::from_secs(9)));
        assert!(v.contains(UnixTime::from_secs(10)));
        assert!(v.contains(UnixTime::from_secs(20)));
        assert!(!v.contains(UnixTime::from_secs(21)));
        assert!(Validity::ALWAYS.contains(UnixTime::from_secs(0)));
    }

    #[test]
    fn intersection_keeps_the_common_part() {
        let a = Validity {
            not_before: UnixTime::from_secs(10),
            not_after: UnixTime::from_secs(20),
        };
        let b = Validity {
            not_before: UnixTime::from_secs(15),
            not_after: UnixTime::from_secs(30),
        };
        let i = a.intersect(b);
        assert_eq!((i.not_before.as_secs(), i.not_after.as_secs()), (15, 20));
        let disjoint = a.intersect(Validity {
            not_before: UnixTime::from_secs(25),
            not_after: UnixTime::from_secs(30),
        });
        assert!(!disjoint.contains(UnixTime::from_secs(20)));
        assert!(!disjoint.contains(UnixTime::from_secs(25)));
    }
}
