//! The runner's MPI transport, and the only code of hejob that knows MPI: start-up and the
//! launcher check, the set-up broadcast from rank 0, and the messages workers send back.
//!
//! Waiting ranks sleep between non-blocking probes instead of sitting in a blocking MPI call:
//! OpenMPI spins in blocking calls, which would take a core from the ranks' own threads.

use std::time::Duration;

use mpi::point_to_point::MatchedReceiveVec;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::job::JobError;

/// Pause between probes while waiting for a message.
const POLL: Duration = Duration::from_millis(20);
/// Largest piece of one broadcast (MPI counts are 32-bit).
const PIECE: usize = 1 << 30;

const TAG_SETUP: i32 = 1;
const TAG_RESULT: i32 = 2;
const TAG_FAILED: i32 = 3;
const TAG_DONE: i32 = 4;

/// What a worker rank tells rank 0.
pub enum Report {
    /// A finished run's encrypted outputs (a serialized `RunOutput`).
    Result(Vec<u8>),
    /// The worker stopped with this error.
    Failed(String),
    /// The worker finished its shard.
    Done,
}

/// The MPI world of this process (a single rank when started without a launcher).
pub struct World {
    comm: SimpleCommunicator,
    rank: usize,
    size: usize,
    ranks_on_node: usize,
    // dropped last: finalizes MPI
    _universe: mpi::environment::Universe,
}

impl World {
    /// Starts MPI and refuses a launcher that does not match the MPI library (each process
    /// would believe it is the only rank and all would write the same files).
    pub fn init() -> Result<Self, JobError> {
        check_launcher(None)?;
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or(JobError::MpiInitialized)?;
        let comm = universe.world();
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        check_launcher(Some(size))?;
        let ranks_on_node = comm.split_shared(comm.rank()).size() as usize;
        Ok(Self {
            comm,
            rank,
            size,
            ranks_on_node,
            _universe: universe,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Ranks sharing this node (and its cores).
    pub fn ranks_on_node(&self) -> usize {
        self.ranks_on_node
    }

    /// Every rank says whether it is ready; returns the ranks that are not (collective).
    pub fn not_ready(&self, ready: bool) -> Vec<usize> {
        let mut all = vec![0u8; self.size];
        self.comm.all_gather_into(&(ready as u8), &mut all[..]);
        (0..self.size).filter(|&r| all[r] == 0).collect()
    }

    /// Every rank waits here until all have come (collective): a rank about to fail the job
    /// lets the others say why first, since the launcher stops them once one exits non-zero.
    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// Rank 0 sends `bytes` to every rank; the others pass `None` and get rank 0's bytes.
    /// Receivers sleep until rank 0 announces the length, so a long key generation costs them
    /// no CPU.
    pub fn broadcast(&self, bytes: Option<Vec<u8>>) -> Vec<u8> {
        let root = self.comm.process_at_rank(0);
        let mut buf = match bytes {
            Some(b) => {
                let len = b.len() as u64;
                for r in 1..self.size {
                    self.comm
                        .process_at_rank(r as i32)
                        .send_with_tag(&len, TAG_SETUP);
                }
                b
            }
            None => {
                let (msg, _) = self.wait(TAG_SETUP);
                let (len, _) = msg.matched_receive::<u64>();
                vec![0u8; len as usize]
            }
        };
        for piece in buf.chunks_mut(PIECE) {
            root.broadcast_into(piece);
        }
        buf
    }

    /// A worker's report to rank 0.
    pub fn report(&self, report: &Report) {
        let root = self.comm.process_at_rank(0);
        match report {
            Report::Result(bytes) => {
                // a length first, then the pieces, so no message exceeds a 32-bit count
                root.send_with_tag(&(bytes.len() as u64), TAG_RESULT);
                for piece in bytes.chunks(PIECE) {
                    root.send_with_tag(piece, TAG_RESULT);
                }
            }
            Report::Failed(reason) => root.send_with_tag(reason.as_bytes(), TAG_FAILED),
            Report::Done => root.send_with_tag(&[0u8][..], TAG_DONE),
        }
    }

    /// Rank 0: the next report from any worker, if one has arrived.
    pub fn poll(&self) -> Option<(usize, Report)> {
        let (msg, status) = self.comm.any_process().immediate_matched_probe()?;
        let from = status.source_rank();
        let tag = status.tag();
        let report = match tag {
            TAG_RESULT => {
                let (len, _) = msg.matched_receive::<u64>();
                let mut bytes = Vec::with_capacity(len as usize);
                let source = self.comm.process_at_rank(from);
                while bytes.len() < len as usize {
                    let (piece, _) = source.receive_vec_with_tag::<u8>(TAG_RESULT);
                    bytes.extend(piece);
                }
                Report::Result(bytes)
            }
            TAG_FAILED => {
                let (reason, _) = (msg, status).matched_receive_vec::<u8>();
                Report::Failed(String::from_utf8_lossy(&reason).into_owned())
            }
            _ => {
                let _ = (msg, status).matched_receive_vec::<u8>();
                Report::Done
            }
        };
        Some((from as usize, report))
    }

    /// Sleeps until a message with `tag` from rank 0 is there.
    fn wait(&self, tag: i32) -> (mpi::point_to_point::Message, mpi::point_to_point::Status) {
        let root = self.comm.process_at_rank(0);
        loop {
            if let Some(found) = root.immediate_matched_probe_with_tag(tag) {
                return found;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Pause of rank 0's event loop when nothing arrived.
pub fn idle() {
    std::thread::sleep(POLL);
}

/// How many processes the launcher's environment announces, and the variable that says so
/// (OpenMPI's own first, so `mpirun -n 1` inside a larger allocation is one rank).
fn announced() -> Option<(&'static str, usize)> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]
        .into_iter()
        .find_map(|var| Some((var, std::env::var(var).ok()?.parse().ok()?)))
}

/// Refuses a launch whose launcher and MPI library do not match: before MPI starts, several
/// processes announced by a launcher that is neither OpenMPI's nor PMIx (an MPICH `mpirun`,
/// `srun` without `--mpi=pmix`, or hejob run directly in a multi-task allocation); after MPI
/// started (`size` known), a world of one rank where several were announced.
fn check_launcher(size: Option<usize>) -> Result<(), JobError> {
    let Some((var, n)) = announced() else {
        return Ok(());
    };
    let pmix = std::env::var_os("PMIX_RANK").is_some();
    let mismatch = match size {
        None => n > 1 && var != "OMPI_COMM_WORLD_SIZE" && !pmix,
        Some(size) => size == 1 && n > 1,
    };
    if !mismatch {
        return Ok(());
    }
    Err(JobError::Launcher {
        processes: n,
        var: var.to_string(),
    })
}
