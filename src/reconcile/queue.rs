//! A work queue for a loop driven by announced changes: a key runs [`super::DEBOUNCE`] after its
//! last trigger, never twice at once (a trigger while it runs makes it run again afterwards),
//! and may ask to run again after a while. It holds only keys that are due or running.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::time::{DelayQueue, delay_queue};

pub struct Queue<K> {
    timers: DelayQueue<K>,
    due: HashMap<K, (delay_queue::Key, Instant)>,
    running: HashSet<K>,
    /// Triggered while running: due again once it is done.
    again: HashSet<K>,
    debounce: Duration,
}

impl<K: Clone + Eq + Hash> Queue<K> {
    pub fn new(debounce: Duration) -> Self {
        Queue {
            timers: DelayQueue::new(),
            due: HashMap::new(),
            running: HashSet::new(),
            again: HashSet::new(),
            debounce,
        }
    }

    /// Something `key` reads changed: run it once things have settled.
    pub fn trigger(&mut self, key: K) {
        if self.running.contains(&key) {
            self.again.insert(key);
        } else {
            self.schedule(key, self.debounce, true);
        }
    }

    /// Runs `key` after `delay`, unless it is due sooner already.
    pub fn requeue(&mut self, key: K, delay: Duration) {
        self.schedule(key, delay, false);
    }

    fn schedule(&mut self, key: K, delay: Duration, postpone: bool) {
        let at = Instant::now() + delay;
        match self.due.get_mut(&key) {
            Some((timer, when)) if postpone || at < *when => {
                self.timers.reset_at(timer, at);
                *when = at;
            }
            Some(_) => {}
            None => {
                let timer = self.timers.insert_at(key.clone(), at);
                self.due.insert(key, (timer, at));
            }
        }
    }

    /// The next key due, marked running; `None` at once when nothing is due at all.
    pub async fn next(&mut self) -> Option<K> {
        loop {
            let expired = std::future::poll_fn(|cx| self.timers.poll_expired(cx)).await?;
            let key = expired.into_inner();
            self.due.remove(&key);
            if self.running.insert(key.clone()) {
                return Some(key);
            }
            self.again.insert(key);
        }
    }

    /// `key` has run: triggered meanwhile, it is due again after the debounce.
    pub fn done(&mut self, key: &K) {
        self.running.remove(key);
        if self.again.remove(key) {
            self.trigger(key.clone());
        }
    }

    /// Keys due or running.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.due.len() + self.running.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const D: Duration = Duration::from_millis(500);

    async fn within(queue: &mut Queue<&'static str>, d: Duration) -> Option<&'static str> {
        tokio::time::timeout(d, queue.next()).await.ok().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_runs_once_after_its_last_trigger() {
        let mut queue = Queue::new(D);
        queue.trigger("a");
        tokio::time::sleep(Duration::from_millis(400)).await;
        queue.trigger("a");
        assert_eq!(within(&mut queue, Duration::from_millis(450)).await, None);
        assert_eq!(
            within(&mut queue, Duration::from_millis(100)).await,
            Some("a")
        );
        queue.done(&"a");
        assert!(queue.is_empty());
        assert_eq!(queue.next().await, None, "nothing due: answers at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_triggered_while_running_runs_again_after_it_is_done() {
        let mut queue = Queue::new(D);
        queue.trigger("a");
        assert_eq!(queue.next().await, Some("a"));
        queue.trigger("a");
        queue.trigger("b");
        assert_eq!(queue.next().await, Some("b"), "a is still running");
        queue.done(&"a");
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(queue.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_requeue_never_postpones_a_sooner_run() {
        let mut queue = Queue::new(D);
        queue.trigger("a");
        queue.requeue("a", Duration::from_secs(60));
        assert_eq!(within(&mut queue, Duration::from_secs(1)).await, Some("a"));
        queue.done(&"a");
        queue.requeue("a", Duration::from_secs(5));
        queue.requeue("a", Duration::from_secs(1));
        assert_eq!(within(&mut queue, Duration::from_millis(900)).await, None);
        assert_eq!(
            within(&mut queue, Duration::from_millis(200)).await,
            Some("a")
        );
    }
}
