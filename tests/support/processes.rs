//! Engines the tests start (PostgreSQL, Redis) frozen and thawed with
//! signals, for outages that look like a network partition.

/// Processes stopped with SIGSTOP until dropped (SIGCONT): frozen, an
/// engine accepts connections and answers nothing, as one behind a network
/// partition, or stuck on its disk, looks to its clients.
pub(crate) struct Frozen(Vec<String>);

impl Frozen {
    pub(crate) fn new(pids: Vec<String>) -> Frozen {
        signal("-STOP", &pids);
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(signal: &str, pids: &[String]) {
    let status = std::process::Command::new("kill")
        .arg(signal)
        .args(pids)
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pids:?}");
}
