//! What the kill -9 tiers share: telling a SIGKILL from the child's exit status, and a
//! watchdog that fails the test binary with its last step if a tier hangs.

use std::process::ExitStatus;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Whether the child died of SIGKILL.
#[cfg(unix)]
pub fn killed_by_sigkill(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
pub fn killed_by_sigkill(status: ExitStatus) -> bool {
    !status.success()
}

/// Fails the whole test binary with a clear message if the test is still running after
/// `limit` (a hang guard, not a timing assertion).
pub struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
    status: Arc<Mutex<String>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(test: &'static str, limit: Duration) -> Self {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let status = Arc::new(Mutex::new(String::from("starting")));
        let (flag, last) = (Arc::clone(&done), Arc::clone(&status));
        let thread = thread::spawn(move || {
            let (lock, cvar) = &*flag;
            let (finished, _) = cvar
                .wait_timeout_while(lock.lock().expect("lock"), limit, |done| !*done)
                .expect("wait");
            if !*finished {
                eprintln!(
                    "HANG: {test} did not finish within {limit:?}; last step: {}",
                    last.lock().expect("lock")
                );
                std::process::exit(101);
            }
        });
        Watchdog {
            done,
            status,
            thread: Some(thread),
        }
    }

    pub fn step(&self, what: String) {
        *self.status.lock().expect("lock") = what;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.done.0.lock().expect("lock") = true;
        self.done.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
