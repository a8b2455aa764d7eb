//! XID errors through NVML events: one event set for the agent's life, every device that
//! supports it registered for `nvmlEventTypeXidCriticalError`, drained each tick with a zero
//! timeout (`nvmlEventSetWait_v2(set, data, 0)` answers Timeout at once when nothing is
//! pending), so the tick never waits for an event. A bounded number is taken per tick; the rest
//! stay queued in the driver for the next one.
//!
//! NVML events are not historical: an XID raised before the set was registered is never seen,
//! and counts start when the agent (or NVML, after a reload) starts.

use std::sync::Arc;

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::event::EventSet;

/// Events taken per tick: an XID storm costs at most this many calls, and what is left waits
/// in the driver's queue.
pub const MAX_EVENTS_PER_TICK: usize = 64;

/// NVML's value for an XID it cannot name (`XidError::Unknown`).
const XID_UNKNOWN: u32 = 999;

/// The event set and the NVML it was created from.
pub struct XidWatch {
    // SAFETY: `set` borrows the `Nvml` behind `_nvml` as `'static`. That holds because the Arc
    // keeps the `Nvml` at one heap address while this struct lives, and fields drop in
    // declaration order, so the set is freed before the Arc is released. The `'static`
    // borrow never leaves this struct.
    set: EventSet<'static>,
    _nvml: Arc<Nvml>,
    /// How many devices the set was built for (rebuilt when the count changes).
    pub devices: u32,
}

impl std::fmt::Debug for XidWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XidWatch")
            .field("devices", &self.devices)
            .finish_non_exhaustive()
    }
}

/// Why no set could be built this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchError {
    /// The library or platform has no events (WSL2, an old driver): never tried again.
    Unavailable(String),
    /// Registering device `index` failed; NVML freed the set. Skip it and build again.
    Device { index: u32, error: String },
}

/// One XID seen on device `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xid {
    pub index: u32,
    pub xid: u32,
}

impl XidWatch {
    /// Creates the set and registers every device `0..count` not in `skip` whose supported
    /// events include XIDs; `skip` gains the devices that cannot report them. `Ok(None)` when
    /// no device can.
    pub fn build(
        nvml: &Arc<Nvml>,
        count: u32,
        skip: &mut Vec<bool>,
    ) -> Result<Option<XidWatch>, WatchError> {
        skip.resize(count as usize, false);
        // SAFETY: see the field comment on `XidWatch::set`; `owner` moves into the struct.
        let owner = Arc::clone(nvml);
        let nvml: &'static Nvml = unsafe { &*Arc::as_ptr(&owner) };
        let mut set = match nvml.create_event_set() {
            Ok(set) => set,
            Err(e @ (NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_))) => {
                return Err(WatchError::Unavailable(e.to_string()));
            }
            Err(e) => return Err(WatchError::Unavailable(format!("nvmlEventSetCreate: {e}"))),
        };
        let mut registered = 0;
        for index in 0..count {
            if skip[index as usize] {
                continue;
            }
            let Ok(dev) = nvml.device_by_index(index) else {
                continue;
            };
            match dev.supported_event_types() {
                Ok(types) if types.contains(EventTypes::CRITICAL_XID_ERROR) => {}
                Err(NvmlError::FailedToLoadSymbol(e)) => {
                    return Err(WatchError::Unavailable(e));
                }
                // NotSupported, no XID bit, or lost: this device reports no XIDs.
                _ => {
                    skip[index as usize] = true;
                    continue;
                }
            }
            set = match dev.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
                Ok(set) => set,
                Err(e) => {
                    skip[index as usize] = true;
                    return Err(WatchError::Device {
                        index,
                        error: e.error.to_string(),
                    });
                }
            };
            registered += 1;
        }
        if registered == 0 {
            return Ok(None);
        }
        Ok(Some(XidWatch {
            set,
            _nvml: owner,
            devices: count,
        }))
    }

    /// Takes the pending XID events without waiting, at most `MAX_EVENTS_PER_TICK`. An error
    /// other than Timeout (nothing pending) ends the drain and is returned beside what came.
    pub fn drain(&self, out: &mut Vec<Xid>) -> Option<String> {
        for _ in 0..MAX_EVENTS_PER_TICK {
            match self.set.wait(0) {
                Ok(ev) => {
                    let xid = match ev.event_data {
                        Some(XidError::Value(v)) => u32::try_from(v).unwrap_or(XID_UNKNOWN),
                        Some(XidError::Unknown) => XID_UNKNOWN,
                        None => continue,
                    };
                    match ev.device.index() {
                        Ok(index) => out.push(Xid { index, xid }),
                        Err(e) => return Some(format!("XID {xid} on an unknown device: {e}")),
                    }
                }
                Err(NvmlError::Timeout) => return None,
                Err(e) => return Some(format!("waiting for NVML events failed: {e}")),
            }
        }
        None
    }
}

/// Counts per XID of one device, sorted by XID (a handful at most).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XidCounts {
    pub counts: Vec<(u32, u64)>,
    pub last: Option<u32>,
}

impl XidCounts {
    pub fn record(&mut self, xid: u32) {
        match self.counts.binary_search_by_key(&xid, |(x, _)| *x) {
            Ok(i) => self.counts[i].1 += 1,
            Err(i) => self.counts.insert(i, (xid, 1)),
        }
        self.last = Some(xid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stay_sorted_and_remember_the_last() {
        let mut c = XidCounts::default();
        for x in [79, 13, 79, 48] {
            c.record(x);
        }
        assert_eq!(c.counts, vec![(13, 1), (48, 1), (79, 2)]);
        assert_eq!(c.last, Some(48));
    }
}
