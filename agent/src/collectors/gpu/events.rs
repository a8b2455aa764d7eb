//! XID errors through NVML events: one event set for the agent's life, every device that
//! supports it registered for `nvmlEventTypeXidCriticalError`, drained each tick with a zero
//! timeout (`nvmlEventSetWait_v2(set, data, 0)` answers Timeout at once when nothing is
//! pending), so the tick never waits for an event. A bounded number is taken per tick; the rest
//! stay queued in the driver for the next one.
//!
//! NVML events are not historical: an XID raised before the set was registered is never seen,
//! and counts start when the agent (or NVML, after a reload) starts.

use std::sync::Arc;

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::{NvmlError, nvml_try};
use nvml_wrapper::event::EventSet;
use nvml_wrapper::{Device, Nvml};

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
    /// Devices registered so far (draining is skipped while none is).
    registered: usize,
}

impl std::fmt::Debug for XidWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XidWatch")
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

/// One XID seen on device `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xid {
    pub index: u32,
    pub xid: u32,
}

impl XidWatch {
    /// Creates the (empty) event set; Err when this library or platform has no events (WSL2,
    /// an old driver), which is not tried again.
    pub fn create(nvml: &Arc<Nvml>) -> Result<XidWatch, String> {
        let owner = Arc::clone(nvml);
        // SAFETY: see the field comment on `XidWatch::set`; `owner` moves into the struct.
        let nvml: &'static Nvml = unsafe { &*Arc::as_ptr(&owner) };
        let set = nvml.create_event_set().map_err(|e| e.to_string())?;
        Ok(XidWatch {
            set,
            _nvml: owner,
            registered: 0,
        })
    }

    /// Registers `dev` (a handle the tick already holds: no extra lookup) for XID events.
    /// Ok(false) when the device does not offer them (NotSupported, or no XID bit).
    pub fn register(&mut self, dev: &Device<'_>) -> Result<bool, NvmlError> {
        match dev.supported_event_types() {
            Ok(types) if types.contains(EventTypes::CRITICAL_XID_ERROR) => {}
            Ok(_) | Err(NvmlError::NotSupported) => return Ok(false),
            Err(e) => return Err(e),
        }
        // The raw call: nvml-wrapper's `register_events` takes the set by value and frees it on
        // any error, which would drop every device registered before this one.
        let sym = dev
            .nvml()
            .lib()
            .nvmlDeviceRegisterEvents
            .as_ref()
            .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))?;
        let types = EventTypes::CRITICAL_XID_ERROR.bits();
        // SAFETY: both handles are live (the device from this tick's lookup, the set owned by
        // self) and come from the same loaded library as the symbol.
        match nvml_try(unsafe { sym(dev.handle(), types, self.set.handle()) }) {
            Ok(()) => {
                self.registered += 1;
                Ok(true)
            }
            Err(NvmlError::NotSupported) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes the pending XID events without waiting, at most `MAX_EVENTS_PER_TICK`. An error
    /// other than Timeout (nothing pending) ends the drain and is returned beside what came.
    pub fn drain(&self, out: &mut Vec<Xid>) -> Option<String> {
        if self.registered == 0 {
            return None;
        }
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
