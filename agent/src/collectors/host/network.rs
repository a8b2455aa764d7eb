//! Interfaces from `<proc_root>/net/dev`: the network namespace of the process that reads it
//! (in a container, the host's only with the host's network namespace or the host's proc).

use std::sync::Arc;

use regex_lite::Regex;

use super::config::{NetworkConfig, compile};
use super::names::NameMemo;
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint};

/// Below the proc root.
pub const NET_DEV: &str = "net/dev";

/// Two header lines and one ~150-byte line per interface.
pub const NET_DEV_CAP: u64 = 4 << 20;

/// One direction's counters of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Direction {
    pub bytes: u64,
    pub packets: u64,
    pub errors: u64,
    pub dropped: u64,
}

/// Borrowed from the tick's text, as `DiskStats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDev<'a> {
    pub name: &'a str,
    pub receive: Direction,
    pub transmit: Direction,
}

/// Parses net/dev: `name: rx bytes packets errs drop fifo frame compressed multicast tx bytes
/// packets errs drop fifo colls carrier compressed`. The header lines have no colon-separated
/// 16 numbers and are skipped, as are malformed lines.
pub fn parse_net_dev(text: &str) -> Vec<NetDev<'_>> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let mut n = [0u64; 16];
            let mut it = rest.split_ascii_whitespace();
            for slot in &mut n {
                *slot = it.next()?.parse().ok()?;
            }
            Some(NetDev {
                name: name.trim(),
                receive: Direction {
                    bytes: n[0],
                    packets: n[1],
                    errors: n[2],
                    dropped: n[3],
                },
                transmit: Direction {
                    bytes: n[8],
                    packets: n[9],
                    errors: n[10],
                    dropped: n[11],
                },
            })
        })
        .collect()
}

/// Which interfaces are reported, compiled once per config.
#[derive(Debug, Clone)]
pub struct NetFilter {
    exclude: Option<Regex>,
    memo: NameMemo,
}

impl NetFilter {
    pub fn new(config: &NetworkConfig) -> Self {
        NetFilter {
            exclude: compile(&config.device_exclude),
            memo: NameMemo::default(),
        }
    }

    /// The interface's name, shared, when the filter keeps it.
    pub fn kept(&mut self, name: &str) -> Option<Arc<str>> {
        let exclude = &self.exclude;
        self.memo
            .kept(name, |n| !exclude.as_ref().is_some_and(|r| r.is_match(n)))
    }
}

/// The `system.network.*` points of the interfaces the filter keeps.
pub fn network_points(devs: &[NetDev], filter: &mut NetFilter, points: &mut Vec<MetricPoint>) {
    for d in devs {
        let Some(name) = filter.kept(d.name) else {
            continue;
        };
        let iface = Attrs::new().with(AttrKey::NetworkInterfaceName, name);
        for (dir, c) in [("receive", d.receive), ("transmit", d.transmit)] {
            let a = iface.clone().with(AttrKey::NetworkIoDirection, dir);
            for (name, v) in [
                (MetricName::SystemNetworkIo, c.bytes),
                (MetricName::SystemNetworkPacketCount, c.packets),
                (MetricName::SystemNetworkErrors, c.errors),
                (MetricName::SystemNetworkPacketDropped, c.dropped),
            ] {
                points.push(MetricPoint::new(name, a.clone(), v));
            }
        }
    }
}
