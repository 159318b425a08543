//! Facts about this process that only the operating system knows: its resident memory, now and
//! at its peak.

/// Resets the kernel's peak-RSS mark of this process (Linux; ignored elsewhere).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process since start or the last reset, in MB (Linux).
pub fn peak_rss_mb() -> Option<f64> {
    status_mb("VmHWM:")
}

/// Resident memory of this process now, in MB (Linux).
pub fn rss_mb() -> Option<f64> {
    status_mb("VmRSS:")
}

/// A `kB` field of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1e3)
}

/// The memory this node grants the job, in bytes, and where that figure comes from: the Slurm
/// allocation (`SLURM_MEM_PER_NODE`, or `SLURM_MEM_PER_CPU` × `SLURM_CPUS_ON_NODE`, in MB),
/// else the cgroup's limit, else the machine's memory (Linux).
pub fn node_memory() -> Option<(u64, &'static str)> {
    let var = |name: &str| -> Option<u64> { std::env::var(name).ok()?.trim().parse().ok() };
    const MB: u64 = 1 << 20;
    if let Some(mb) = var("SLURM_MEM_PER_NODE").filter(|&m| m > 0) {
        return Some((mb * MB, "the Slurm allocation (SLURM_MEM_PER_NODE)"));
    }
    if let (Some(mb), Some(cpus)) = (var("SLURM_MEM_PER_CPU"), var("SLURM_CPUS_ON_NODE")) {
        return Some((mb * cpus * MB, "the Slurm allocation (SLURM_MEM_PER_CPU)"));
    }
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())
    .find(|&b| b < 1 << 60);
    if let Some(bytes) = cgroup {
        return Some((bytes, "the cgroup's memory limit"));
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb * 1024, "the machine's memory"))
}
