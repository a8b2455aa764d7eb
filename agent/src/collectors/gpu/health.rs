//! The readings operators page on beside XIDs: PCIe replays and throughput, remapped rows
//! (Ampere and newer) and retired pages (older GPUs) with their pending flags, encoder and
//! decoder utilisation, and the aggregate (lifetime) ECC counts. Each absent where NVML answers
//! NotSupported, as the other GPU readings are.

use nvml_wrapper::Device;
use nvml_wrapper::enum_wrappers::device::{
    EccCounter, MemoryError, PcieUtilCounter, RetirementCause,
};
use nvml_wrapper::error::{NvmlError, nvml_try};

/// `nvmlDeviceGetRemappedRows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemappedRows {
    pub corrected: u32,
    pub uncorrected: u32,
    /// A remap waits for the next GPU reset.
    pub pending: bool,
    /// A remap failed: the board needs service.
    pub failure: bool,
}

/// Pages retired by cause (`nvmlDeviceGetRetiredPages_v2`), counts only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetiredPages {
    pub multiple_single_bit: u32,
    pub double_bit: u32,
}

/// What one device's health queries read this tick; None = not offered here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    pub pcie_replays: Option<u32>,
    /// KB/s over the driver's 20 ms sample: (transmit, receive).
    pub pcie_kbps: Option<(u32, u32)>,
    pub encoder_percent: Option<u32>,
    pub decoder_percent: Option<u32>,
    /// Lifetime ECC counts (NVML_AGGREGATE_ECC): (corrected, uncorrected).
    pub ecc_aggregate: Option<(u64, u64)>,
    pub remapped: Option<RemappedRows>,
    pub retired: Option<RetiredPages>,
    pub retired_pending: Option<bool>,
}

pub fn pcie_throughput(dev: &Device<'_>) -> Result<(u32, u32), NvmlError> {
    Ok((
        dev.pcie_throughput(PcieUtilCounter::Send)?,
        dev.pcie_throughput(PcieUtilCounter::Receive)?,
    ))
}

pub fn ecc_aggregate(dev: &Device<'_>) -> Result<(u64, u64), NvmlError> {
    Ok((
        dev.total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate)?,
        dev.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate)?,
    ))
}

pub fn retired_pages(dev: &Device<'_>) -> Result<RetiredPages, NvmlError> {
    let count = |cause| {
        dev.retired_pages(cause)
            .map(|pages| u32::try_from(pages.len()).unwrap_or(u32::MAX))
    };
    Ok(RetiredPages {
        multiple_single_bit: count(RetirementCause::MultipleSingleBitEccErrors)?,
        double_bit: count(RetirementCause::DoubleBitEccError)?,
    })
}

/// nvml-wrapper 0.13 has no safe call for `nvmlDeviceGetRemappedRows`: it is called through the
/// library's own symbol table, with the wrapper's error mapping.
pub fn remapped_rows(dev: &Device<'_>) -> Result<RemappedRows, NvmlError> {
    let sym = dev
        .nvml()
        .lib()
        .nvmlDeviceGetRemappedRows
        .as_ref()
        .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))?;
    let (mut corrected, mut uncorrected, mut pending, mut failure) = (0, 0, 0, 0);
    // SAFETY: the handle comes from `device_by_index` on the `Nvml` that owns this symbol and
    // lives as long as `dev`; the four out-pointers are live, writable `c_uint`s.
    nvml_try(unsafe {
        sym(
            dev.handle(),
            &raw mut corrected,
            &raw mut uncorrected,
            &raw mut pending,
            &raw mut failure,
        )
    })?;
    Ok(RemappedRows {
        corrected,
        uncorrected,
        pending: pending != 0,
        failure: failure != 0,
    })
}
