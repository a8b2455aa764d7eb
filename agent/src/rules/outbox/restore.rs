//! Reading `outbox.json` with the capacity applied while reading: each event goes through
//! `Outbox::push`, so however many events the file holds (a 1,000,000-event outbox cost 664 MB
//! when restored whole), at most `capacity` are kept; the older ones are counted as dropped.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Outbox;
use crate::rules::event::AlertEvent;

/// Deserializes a saved outbox (`{"dropped": N, "events": [...]}`) into an [`Outbox`] of
/// `capacity`.
pub struct Restore {
    pub capacity: usize,
}

impl<'de> DeserializeSeed<'de> for Restore {
    type Value = Outbox;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Outbox, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Restore {
    type Value = Outbox;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a saved outbox")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Outbox, A::Error> {
        let mut outbox = Outbox::new(self.capacity);
        let mut saved_dropped = 0u64;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "dropped" => saved_dropped = map.next_value()?,
                "events" => map.next_value_seed(Events(&mut outbox))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        outbox.dropped = outbox.dropped.saturating_add(saved_dropped);
        Ok(outbox)
    }
}

/// The event list, pushed one by one into the bounded queue.
struct Events<'a>(&'a mut Outbox);

impl<'de> DeserializeSeed<'de> for Events<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Events<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of alert events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(event) = seq.next_element::<AlertEvent>()? {
            self.0.push(event);
        }
        Ok(())
    }
}
