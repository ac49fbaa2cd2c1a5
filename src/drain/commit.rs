//! Group commit: one task per drain writes the results of every request in flight. Runs
//! send their progress writes and completions here and wait; the committer takes whatever
//! has gathered while the previous transaction ran and writes it in one transaction
//! ([`Store::write_batch`]), then answers each sender. With many requests finishing
//! together, one commit (and a handful of statements) serves many of them instead of one
//! each.
//!
//! What it keeps:
//! - a sender hears back only after the commit: a run proceeds as if its results were
//!   written only once they are durable, so a crash loses at most the calls in flight;
//! - every write is fenced on its own: a request whose claim is gone gets `LeaseLost` (its
//!   rows are written all the same) and the others in the batch are not affected;
//! - an outage is retried with backoff as any write ([`Worker::write`]); if a batch fails
//!   otherwise, each write is tried alone, so one bad write fails only its own request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::Worker;
use crate::outcome::{Decision, RequestState};
use crate::storage::{Fence, Results, StoreError, Write};

/// Most writes in one transaction.
const MAX_BATCH: usize = 256;

/// What a sender hears back: the state written (`Running` for progress) or why not, with
/// its results given back (to count in metrics, or to keep for a later write).
type Answer = (Result<RequestState, StoreError>, Results);

/// A write handed over, its answer to come.
pub(super) enum Later {
    Waiting(oneshot::Receiver<Answer>),
    Done(Box<Answer>),
}

impl Later {
    /// Waits for the answer.
    pub(super) async fn answer(self) -> Answer {
        match self {
            Later::Done(answer) => *answer,
            Later::Waiting(answer) => answer.await.unwrap_or_else(|_| stopped()),
        }
    }

    /// The answer if it has come, else the write back.
    pub(super) fn ready(self) -> Result<Answer, Later> {
        match self {
            Later::Done(answer) => Ok(*answer),
            Later::Waiting(mut answer) => match answer.try_recv() {
                Ok(answer) => Ok(answer),
                Err(oneshot::error::TryRecvError::Empty) => Err(Later::Waiting(answer)),
                Err(oneshot::error::TryRecvError::Closed) => Ok(stopped()),
            },
        }
    }
}

/// The committer stopped mid-batch (a panic): whether the batch was written is unknown, so
/// the run stops and the lease expires, as after a database error.
fn stopped() -> Answer {
    (Err(StoreError::CommitterStopped), Results::default())
}

/// One request's write, waiting for the committer.
struct Job {
    fence: Fence,
    results: Results,
    /// The user and where the request goes, for a completion.
    decision: Option<(String, Decision)>,
    reply: oneshot::Sender<Answer>,
}

/// Counts of what committers wrote: transactions and the writes they carried.
#[derive(Debug, Default)]
pub(super) struct CommitCounts {
    transactions: AtomicU64,
    writes: AtomicU64,
}

impl CommitCounts {
    /// `(transactions, writes)` so far.
    pub(super) fn get(&self) -> (u64, u64) {
        (
            self.transactions.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

/// Where a drain's runs send their writes. Cheap to clone.
#[derive(Clone)]
pub(super) struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Committer {
    /// Starts the committer of one drain. It ends when every handle is dropped (the drain
    /// and its runs are over), after writing what was sent.
    pub(super) fn start(worker: Worker) -> (Committer, tokio::task::JoinHandle<()>) {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(worker, receiver));
        (Committer { jobs }, task)
    }
}

impl Worker {
    /// Writes one request's results, through the drain's committer when there is one, else
    /// alone; retried through outages either way. Gives the results back with the answer.
    pub(super) async fn commit(&self, fence: &Fence, results: Results, decision: Option<(&str, &Decision)>) -> Answer {
        self.send(fence, results, decision).await.answer().await
    }

    /// Hands one request's results to the drain's committer and returns at once, the
    /// answer to come ([`Later::answer`]); writes them alone, and waits, when there is no
    /// committer. Writes one run sends are written in the order sent.
    pub(super) async fn send(&self, fence: &Fence, results: Results, decision: Option<(&str, &Decision)>) -> Later {
        let Some(committer) = &self.committer else {
            let write = Write {
                fence,
                results: &results,
                decision,
            };
            let answer = self.write_alone(write).await;
            return Later::Done(Box::new((answer, results)));
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            fence: fence.clone(),
            results,
            decision: decision.map(|(user, d)| (user.to_owned(), d.clone())),
            reply,
        };
        if let Err(mpsc::error::SendError(job)) = committer.jobs.send(job) {
            // The committer is gone (its drain ended): nothing of this job was written.
            let write = Write {
                fence,
                results: &job.results,
                decision,
            };
            let answer = self.write_alone(write).await;
            return Later::Done(Box::new((answer, job.results)));
        }
        Later::Waiting(answer)
    }

    async fn write_alone(&self, write: Write<'_>) -> Result<RequestState, StoreError> {
        let answers = self
            .write(|store| store.write_batch(std::slice::from_ref(&write)))
            .await;
        self.commits.transactions.fetch_add(1, Ordering::Relaxed);
        self.commits.writes.fetch_add(1, Ordering::Relaxed);
        answers?
            .pop()
            .unwrap_or(Err(StoreError::LeaseLost(write.fence.request_id())))
    }
}

/// The committer's loop: takes every job waiting (up to [`MAX_BATCH`]), writes them in one
/// transaction, answers each, and goes again.
async fn run(worker: Worker, mut receiver: mpsc::UnboundedReceiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let answers = {
            let writes: Vec<Write<'_>> = jobs
                .iter()
                .map(|job| Write {
                    fence: &job.fence,
                    results: &job.results,
                    decision: job.decision.as_ref().map(|(user, d)| (user.as_str(), d)),
                })
                .collect();
            let batch = worker.write(|store| store.write_batch(&writes)).await;
            match batch {
                Ok(answers) => {
                    worker.commits.transactions.fetch_add(1, Ordering::Relaxed);
                    worker.commits.writes.fetch_add(writes.len() as u64, Ordering::Relaxed);
                    answers
                }
                Err(e) if writes.len() == 1 => vec![Err(e)],
                // Not an outage (or one that outlasted the patience): try each alone, so
                // that what is wrong with one write fails only its own request.
                Err(_) => {
                    let mut answers = Vec::with_capacity(writes.len());
                    for write in &writes {
                        answers.push(worker.write_alone(*write).await);
                    }
                    answers
                }
            }
        };
        for (job, answer) in jobs.drain(..).zip(answers) {
            // A sender that went away (its run was aborted) needs no answer.
            let _ = job.reply.send((answer, job.results));
        }
    }
}

/// The counts shared by a worker's clones.
pub(super) type Counts = Arc<CommitCounts>;
