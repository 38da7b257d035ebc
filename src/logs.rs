//! Where log lines go: a queue that a thread of its own writes out in batches, so that a review
//! never waits for whoever reads stderr (a pipe nobody drains blocks its writer) and a burst of
//! lines costs one write, not one each. While the reader is behind, lines that do not fit in the
//! queue are dropped and counted (`bindguard_log_lines_dropped_total`).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Bytes of log lines held while the output is not taking them; past this, lines are dropped.
pub const QUEUE_BYTES: usize = 4 << 20;
/// How long a line waits for others to be written with it.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// How long stopping waits for the queue to be written out.
const FINISH_LIMIT: Duration = Duration::from_secs(2);
/// Capacity a written batch keeps for the next one; a burst's larger buffer is given back.
const BATCH_KEPT: usize = 64 << 10;

/// The writing end, given to the log subscriber: appending a line never blocks on the output.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

/// Owns the thread that writes the queue out; dropping it writes what is queued (waiting at
/// most [`FINISH_LIMIT`]) and stops the thread.
pub struct Writer {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    limit: usize,
    dropped: AtomicU64,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    closing: bool,
    finished: bool,
}

impl Queue {
    /// A queue of at most `limit` bytes, written to `out` by a new thread.
    pub fn start(
        out: impl Write + Send + 'static,
        limit: usize,
    ) -> std::io::Result<(Queue, Writer)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            limit,
            dropped: AtomicU64::new(0),
        });
        let drained = shared.clone();
        thread::Builder::new()
            .name("bindguard-log".into())
            .spawn(move || write_out(&drained, out))?;
        let writer = Writer {
            shared: shared.clone(),
        };
        Ok((Queue { shared }, writer))
    }

    /// Lines dropped so far because the queue was full (or already closed).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn push(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        if state.closing || state.lines.len() + line.len() > self.shared.limit {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = state.lines.is_empty();
        state.lines.extend_from_slice(line);
        drop(state);
        if first {
            self.shared.changed.notify_all();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The writing thread: waits for a line, lets others gather for [`BATCH_WINDOW`], writes them
/// all at once; until closed and empty.
fn write_out(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.lines.is_empty() && !state.closing {
            state = shared.wait(state);
        }
        if state.lines.is_empty() {
            state.finished = true;
            shared.changed.notify_all();
            return;
        }
        if !state.closing {
            drop(state);
            thread::sleep(BATCH_WINDOW);
            state = shared.lock();
        }
        std::mem::swap(&mut state.lines, &mut batch);
        drop(state);
        if out.write_all(&batch).and_then(|()| out.flush()).is_err() {
            let lost = batch.iter().filter(|&&byte| byte == b'\n').count();
            shared.dropped.fetch_add(lost as u64, Ordering::Relaxed);
        }
        batch.clear();
        batch.shrink_to(BATCH_KEPT);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closing = true;
        self.shared.changed.notify_all();
        let waited = self
            .shared
            .changed
            .wait_timeout_while(state, FINISH_LIMIT, |state| !state.finished);
        drop(waited);
    }
}

/// One line from the subscriber: it formats each line whole and writes it with one call.
pub struct Line<'a>(&'a Queue);

impl Write for Line<'_> {
    fn write(&mut self, text: &[u8]) -> std::io::Result<usize> {
        self.0.push(text);
        Ok(text.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Queue {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output that tells when a write begins and finishes it only when let go.
    struct Stuck {
        entered: mpsc::Sender<()>,
        go: mpsc::Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, text: &[u8]) -> std::io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.go.recv();
            self.written.lock().unwrap().extend_from_slice(text);
            Ok(text.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_wait_in_the_queue_while_the_output_is_stuck_and_the_surplus_is_dropped() {
        let (entered, stuck_in_write) = mpsc::channel();
        let (go, released) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let out = Stuck {
            entered,
            go: released,
            written: written.clone(),
        };
        let (queue, writer) = Queue::start(out, 100).expect("thread");
        queue.push(b"first\n");
        stuck_in_write.recv().expect("the output is being written");
        let pushing = queue.clone();
        let (done, pushed) = mpsc::channel();
        thread::spawn(move || {
            for n in 0..30 {
                pushing.push(format!("line {n:02}\n").as_bytes());
            }
            let _ = done.send(());
        });
        pushed
            .recv_timeout(Duration::from_secs(30))
            .expect("appending never waits for the output");
        assert_eq!(queue.dropped(), 30 - 12, "100 bytes hold 12 lines of 8");
        for _ in 0..2 {
            let _ = go.send(());
        }
        drop(writer);
        let written = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let expected: String = (0..12).map(|n| format!("line {n:02}\n")).collect();
        assert_eq!(written, format!("first\n{expected}"));
    }

    #[test]
    fn stopping_gives_up_on_an_output_that_never_takes_the_lines() {
        let (entered, stuck_in_write) = mpsc::channel();
        let (_never, released) = mpsc::channel();
        let out = Stuck {
            entered,
            go: released,
            written: Arc::new(Mutex::new(Vec::new())),
        };
        let (queue, writer) = Queue::start(out, QUEUE_BYTES).expect("thread");
        queue.push(b"stuck\n");
        stuck_in_write.recv().expect("the output is being written");
        let (done, stopped) = mpsc::channel();
        thread::spawn(move || {
            drop(writer);
            let _ = done.send(());
        });
        stopped
            .recv_timeout(FINISH_LIMIT * 10)
            .expect("stopping returns though the output is stuck");
    }

    #[test]
    fn lines_the_output_refuses_are_counted_as_dropped() {
        struct Refusing;
        impl Write for Refusing {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (queue, writer) = Queue::start(Refusing, QUEUE_BYTES).expect("thread");
        queue.push(b"one\n");
        queue.push(b"two\n");
        drop(writer);
        assert_eq!(queue.dropped(), 2);
    }

    #[test]
    fn stopping_writes_out_what_is_queued_and_later_lines_are_counted_as_dropped() {
        let written = Arc::new(Mutex::new(Vec::new()));
        struct Collected(Arc<Mutex<Vec<u8>>>);
        impl Write for Collected {
            fn write(&mut self, text: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(text);
                Ok(text.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (queue, writer) =
            Queue::start(Collected(written.clone()), QUEUE_BYTES).expect("thread");
        for n in 0..1_000 {
            queue.push(format!("{n}\n").as_bytes());
        }
        drop(writer);
        let expected: String = (0..1_000).map(|n| format!("{n}\n")).collect();
        assert_eq!(*written.lock().unwrap(), expected.into_bytes());
        queue.push(b"late\n");
        assert_eq!(queue.dropped(), 1);
    }
}
