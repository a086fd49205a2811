//! Event ids: UUIDv7 (RFC 9562) whose upper 64 bits — the millisecond timestamp, the
//! version and a 12-bit counter — are also the row's integer key. Ids increase in the
//! order events are stored, and the events table needs no separate index for them.

use uuid::Uuid;

const VERSION: u64 = 0x7000;
const COUNTER: u64 = 0x0fff;
const VARIANT: u64 = 0x8000_0000_0000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// Timestamp, version and counter: the stored integer key.
    pub hi: i64,
    /// Variant and random bits.
    pub lo: i64,
}

impl EventId {
    pub fn to_uuid(self) -> Uuid {
        Uuid::from_u64_pair(self.hi as u64, self.lo as u64)
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        let (hi, lo) = uuid.as_u64_pair();
        Self {
            hi: hi as i64,
            lo: lo as i64,
        }
    }
}

/// Packs ids into 16 bytes each, the stored form of a request's event list.
pub fn pack(ids: &[EventId]) -> Vec<u8> {
    ids.iter()
        .flat_map(|id| id.to_uuid().into_bytes())
        .collect()
}

/// Unpacks what [`pack`] made; a trailing partial id is ignored.
pub fn unpack(bytes: &[u8]) -> Vec<EventId> {
    bytes
        .chunks_exact(16)
        .filter_map(|chunk| Uuid::from_slice(chunk).ok())
        .map(EventId::from_uuid)
        .collect()
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_uuid().fmt(f)
    }
}

/// As the UUID string, the form clients see.
impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Hands out strictly increasing ids, even when the clock stalls or steps back.
#[derive(Debug, Clone)]
pub struct EventIdGenerator {
    last_hi: u64,
}

impl EventIdGenerator {
    /// Continues after `last_hi`, the largest key stored so far (0 for none).
    pub fn after(last_hi: i64) -> Self {
        Self {
            last_hi: last_hi.max(0) as u64,
        }
    }

    /// The next id at `now_ms`, with `random` supplying the low bits.
    pub fn next(&mut self, now_ms: i64, random: u64) -> EventId {
        let floor = ((now_ms.max(0) as u64) << 16) | VERSION;
        let mut bumped = self.last_hi + 1;
        if bumped & !COUNTER & 0xffff != VERSION {
            // The counter of that millisecond is spent: borrow the next millisecond.
            bumped = (((self.last_hi >> 16) + 1) << 16) | VERSION;
        }
        let hi = floor.max(bumped);
        self.last_hi = hi;
        EventId {
            hi: hi as i64,
            lo: ((random & !(0b11 << 62)) | VARIANT) as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_version_7_with_the_time_in_front() {
        let mut ids = EventIdGenerator::after(0);
        let id = ids.next(1_795_000_000_123, u64::MAX);
        let uuid = id.to_uuid();
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            1_795_000_000_123
        );
        assert_eq!(EventId::from_uuid(uuid), id);
    }

    #[test]
    fn a_spent_counter_borrows_the_next_millisecond() {
        let mut ids = EventIdGenerator::after(0);
        let first = ids.next(1000, 1);
        let mut last = first;
        for _ in 0..5000 {
            last = ids.next(1000, 1);
            assert_eq!(last.to_uuid().get_version_num(), 7);
        }
        assert_eq!(last.hi >> 16, 1001);
    }

    #[test]
    fn packs_and_unpacks() {
        let mut ids = EventIdGenerator::after(0);
        let list: Vec<EventId> = (0..3).map(|i| ids.next(5_000, i)).collect();
        let packed = pack(&list);
        assert_eq!(packed.len(), 48);
        assert_eq!(unpack(&packed), list);
        assert!(unpack(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn ids_strictly_increase_whatever_the_clock_does(
            start in 0i64..1 << 44,
            steps in proptest::collection::vec(-5_000i64..5_000, 1..300),
            random in any::<u64>(),
        ) {
            let mut ids = EventIdGenerator::after(0);
            let mut now = start;
            let mut previous = ids.next(now, random);
            for step in steps {
                now = (now + step).max(0);
                let id = ids.next(now, random);
                prop_assert!(id.hi > previous.hi);
                prop_assert_eq!(id.to_uuid().get_version_num(), 7);
                previous = id;
            }
        }
    }
}
