//! The GPU collector of a build without the `nvml` feature: same constructor, and a reason
//! instead of metrics, so a config that enables `[gpu]` learns why nothing comes.

use std::path::PathBuf;

use async_trait::async_trait;

use super::config::GpuConfig;
use crate::collectors::{CollectError, Collector, Sample};
use crate::model::CollectorId;

pub struct GpuCollector;

impl GpuCollector {
    pub fn new(_config: &GpuConfig, _proc_root: PathBuf) -> Self {
        GpuCollector
    }
}

#[async_trait]
impl Collector for GpuCollector {
    fn id(&self) -> CollectorId {
        CollectorId::Gpu
    }

    async fn collect(&mut self) -> Result<Sample, CollectError> {
        Err(CollectError::new(
            "built without NVML support (cargo feature `nvml`); set [gpu] enabled = false to silence this",
        ))
    }
}
