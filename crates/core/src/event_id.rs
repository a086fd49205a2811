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

/// Bits of the counter that name a writer's slot when several nodes store events into one
/// database: 16 writers, each with 256 ids a millisecond before it borrows the next.
pub const SLOT_BITS: u32 = 4;

/// Hands out strictly increasing ids, even when the clock stalls or steps back.
#[derive(Debug, Clone)]
pub struct EventIdGenerator {
    last_hi: u64,
    /// The writer's slot (see [`SLOT_BITS`]): its ids differ from every other writer's
    /// in the same millisecond. `None`: the only writer, with the whole counter.
    slot: Option<u64>,
}

impl EventIdGenerator {
    /// Continues after `last_hi`, the largest key stored so far (0 for none).
    pub fn after(last_hi: i64) -> Self {
        Self {
            last_hi: last_hi.max(0) as u64,
            slot: None,
        }
    }

    /// Hands out only ids of `slot` (below `2^SLOT_BITS`), which no other writer holds.
    pub fn in_slot(self, slot: u64) -> Self {
        assert!(slot < 1 << SLOT_BITS, "slot {slot} is out of range");
        Self {
            slot: Some(slot),
            ..self
        }
    }

    /// The next id at `now_ms`, with `random` supplying the low bits: the smallest id of
    /// this writer's slot after the last one, and not before `now_ms`.
    pub fn next(&mut self, now_ms: i64, random: u64) -> EventId {
        let (base, top) = match self.slot {
            None => (0, COUNTER),
            Some(slot) => {
                let width = 12 - SLOT_BITS;
                (slot << width, (slot << width) | ((1 << width) - 1))
            }
        };
        let last_ms = self.last_hi >> 16;
        let last_counter = self.last_hi & COUNTER;
        let now_ms = now_ms.max(0) as u64;
        let (ms, counter) = if now_ms > last_ms || last_counter < base {
            (now_ms.max(last_ms), base)
        } else if last_counter < top {
            (last_ms, last_counter + 1)
        } else {
            // The slot's counter of that millisecond is spent: borrow the next one.
            (last_ms + 1, base)
        };
        let hi = (ms << 16) | VERSION | counter;
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
        /// Two writers in different slots, started after the same stored key, on clocks
        /// that stall and step back: each one's ids increase, and none is the other's.
        #[test]
        fn writers_in_different_slots_never_share_an_id(
            start in 0i64..1 << 44,
            steps in proptest::collection::vec((-3i64..3, 0usize..2), 1..2000),
            slots in (0u64..16, 0u64..16).prop_filter("two slots", |(a, b)| a != b),
        ) {
            let mut writers = [
                EventIdGenerator::after(start << 16).in_slot(slots.0),
                EventIdGenerator::after(start << 16).in_slot(slots.1),
            ];
            let mut last = [0i64; 2];
            let mut seen = std::collections::HashSet::new();
            let mut now = start;
            for (step, writer) in steps {
                now = (now + step).max(0);
                let id = writers[writer].next(now, 0);
                prop_assert!(id.hi > last[writer]);
                prop_assert_eq!(id.to_uuid().get_version_num(), 7);
                prop_assert!(seen.insert(id.hi), "{:x} handed out twice", id.hi);
                last[writer] = id.hi;
            }
        }

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
