//! A RabbitMQ node of the test process's own: `rabbitmq-server -detached` with its own node
//! name, ports, Erlang cookie, data and log directories, controlled with `rabbitmqctl`.
//!
//! A node takes several seconds to boot, so one node serves every test of a process, one
//! test at a time ([`RabbitNode::lease`]): the tests stop, restart and block it.

use std::{
    net::TcpStream,
    ops::Deref,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use tokio::sync::{Mutex, MutexGuard};

use super::{binaries_available, find_bin_dir, free_port, reap_after_exit, run, shell_quote, tail};

/// Longest a node may take to boot (it takes 5–10 s on a busy two-core machine).
const BOOT_LIMIT: Duration = Duration::from_secs(90);

/// The process's node, started by the first lease.
static NODE: Mutex<Option<RabbitNode>> = Mutex::const_new(None);

/// A private RabbitMQ node.
pub struct RabbitNode {
    bin: PathBuf,
    dir: PathBuf,
    node: String,
    port: u16,
    dist_port: u16,
    /// Publishers are blocked by a memory alarm this node's test set.
    alarm: AtomicBool,
}

/// Exclusive use of the process's node for one test.
pub struct RabbitLease {
    guard: MutexGuard<'static, Option<RabbitNode>>,
}

impl Deref for RabbitLease {
    type Target = RabbitNode;

    fn deref(&self) -> &RabbitNode {
        self.guard.as_ref().expect("a lease always holds a node")
    }
}

impl RabbitNode {
    /// Waits for the node (started on first use), healthy: running, publishers unblocked.
    /// `None` (with a message) when RabbitMQ is not installed, except under `CI=true`,
    /// where that panics. Needs a multi-threaded runtime (it blocks while the node boots).
    pub async fn lease() -> Option<RabbitLease> {
        let bin = find_bin_dir(&candidates(), &["rabbitmq-server", "rabbitmqctl"]);
        if !binaries_available("RabbitMQ", bin.is_some()) {
            return None;
        }
        let mut guard = NODE.lock().await;
        tokio::task::block_in_place(|| match guard.as_ref() {
            None => *guard = Some(Self::boot(bin.expect("checked above"))),
            // A test that failed half-way may have left it stopped or blocked.
            Some(node) => {
                if !node.reachable() {
                    node.start_again();
                }
                if node.alarm.load(Ordering::SeqCst) {
                    node.unblock_publishers();
                }
            }
        });
        Some(RabbitLease { guard })
    }

    fn boot(bin: PathBuf) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fbtest-rabbit-")
            .tempdir()
            .expect("temporary directory")
            // Outlives every test; the reaper removes it.
            .keep();
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let mut node = Self {
            bin,
            node: format!("fbtest-{}@localhost", &tag[..12]),
            dir,
            port: 0,
            dist_port: 0,
            alarm: AtomicBool::new(false),
        };
        std::fs::create_dir_all(node.home()).expect("home directory");
        let cookie = node.home().join(".erlang.cookie");
        std::fs::write(&cookie, tag.to_uppercase()).expect("cookie");
        std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o400))
            .expect("cookie permissions");
        std::fs::write(node.dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(node.dir.join("rabbitmq-env.conf"), "").expect("env file");
        let pid_file = node.dir.join("mnesia").join(format!("{}.pid", node.node));
        reap_after_exit(&format!(
            "HOME={home} {ctl} -n {name} shutdown >/dev/null 2>&1 || kill -9 $(cat {pid}); rm -rf {dir}",
            home = shell_quote(&node.home().to_string_lossy()),
            ctl = shell_quote(&node.bin.join("rabbitmqctl").to_string_lossy()),
            name = node.node,
            pid = shell_quote(&pid_file.to_string_lossy()),
            dir = shell_quote(&node.dir.to_string_lossy()),
        ));
        let mut last_error = String::new();
        for _ in 0..3 {
            node.port = free_port();
            node.dist_port = free_port();
            std::fs::write(
                node.dir.join("rabbitmq.conf"),
                format!("listeners.tcp.1 = 127.0.0.1:{}\n", node.port),
            )
            .expect("config file");
            match node.launch() {
                Ok(()) => return node,
                Err(error) => last_error = error,
            }
        }
        panic!("the disposable RabbitMQ node did not start: {last_error}");
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the node and its Erlang VM (blocking until the VM has exited). Durable queues
    /// and the persistent messages in them stay on disk for [`RabbitNode::start_again`].
    pub fn stop(&self) {
        self.ctl(&["shutdown"])
            .unwrap_or_else(|e| panic!("rabbitmqctl shutdown: {e}"));
    }

    /// Boots the stopped node again (blocking until it accepts AMQP connections).
    pub fn start_again(&self) {
        self.launch()
            .unwrap_or_else(|e| panic!("the node did not start again: {e}"));
    }

    /// Closes every client connection on the node, as a network cut would (blocking).
    pub fn close_all_connections(&self) {
        self.ctl(&[
            "close_all_connections",
            "--global",
            "fault injected by a test",
        ])
        .unwrap_or_else(|e| panic!("rabbitmqctl close_all_connections: {e}"));
    }

    /// Raises a memory alarm (high watermark 0): the node stops reading from every
    /// connection that publishes, and confirms nothing, until [`Self::unblock_publishers`].
    pub fn block_publishers(&self) {
        self.alarm.store(true, Ordering::SeqCst);
        self.ctl(&["set_vm_memory_high_watermark", "0"])
            .unwrap_or_else(|e| panic!("rabbitmqctl set_vm_memory_high_watermark: {e}"));
    }

    /// Clears the memory alarm (back to the default watermark).
    pub fn unblock_publishers(&self) {
        self.ctl(&["set_vm_memory_high_watermark", "0.4"])
            .unwrap_or_else(|e| panic!("rabbitmqctl set_vm_memory_high_watermark: {e}"));
        self.alarm.store(false, Ordering::SeqCst);
    }

    /// Messages in `queue`, which must exist (blocking).
    pub fn queue_depth(&self, queue: &str) -> u64 {
        let listed = self
            .ctl(&[
                "list_queues",
                "name",
                "messages",
                "--no-table-headers",
                "-q",
            ])
            .unwrap_or_else(|e| panic!("rabbitmqctl list_queues: {e}"));
        listed
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .and_then(|(_, n)| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("queue {queue} is not listed:\n{listed}"))
    }

    /// The state (`running`, `blocking`, `blocked`, …) of the client connection named
    /// `name`, or an empty string when there is none (blocking).
    pub fn connection_state(&self, name: &str) -> String {
        let listed = self
            .ctl(&[
                "list_connections",
                "client_properties",
                "state",
                "--no-table-headers",
                "-q",
            ])
            .unwrap_or_else(|e| panic!("rabbitmqctl list_connections: {e}"));
        let quoted = format!("\"{name}\"");
        listed
            .lines()
            .find(|line| line.contains(&quoted))
            .and_then(|line| line.rsplit('\t').next())
            .map(|state| state.trim().to_owned())
            .unwrap_or_default()
    }

    /// Whether the node accepts TCP connections on its AMQP port.
    pub fn reachable(&self) -> bool {
        TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        )
        .is_ok()
    }

    fn launch(&self) -> Result<(), String> {
        run(
            None,
            &self.dir,
            &self.env(),
            &self.bin.join("rabbitmq-server"),
            &["-detached"],
        )?;
        let deadline = Instant::now() + BOOT_LIMIT;
        while !self.reachable() {
            if Instant::now() > deadline {
                return Err(format!(
                    "no AMQP listener on port {} after {BOOT_LIMIT:?}\n--- node log ---\n{}",
                    self.port,
                    tail(&self.dir.join("log").join(format!("{}.log", self.node)))
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.node.as_str()];
        all.extend_from_slice(args);
        let output = run(
            None,
            &self.dir,
            &self.env(),
            &self.bin.join("rabbitmqctl"),
            &all,
        )?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// Everything the node and the CLI need, none of it shared with the system's node: the
    /// Erlang cookie lives in `HOME`, and the system's config and env files are replaced.
    fn env(&self) -> Vec<(String, String)> {
        let path = |name: &str| self.dir.join(name).to_string_lossy().into_owned();
        vec![
            ("HOME".into(), self.home().to_string_lossy().into_owned()),
            ("RABBITMQ_NODENAME".into(), self.node.clone()),
            ("RABBITMQ_DIST_PORT".into(), self.dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE".into(), path("mnesia")),
            ("RABBITMQ_LOG_BASE".into(), path("log")),
            ("RABBITMQ_CONFIG_FILE".into(), path("rabbitmq.conf")),
            (
                "RABBITMQ_ADVANCED_CONFIG_FILE".into(),
                path("advanced.config"),
            ),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE".into(),
                path("enabled_plugins"),
            ),
            ("RABBITMQ_CONF_ENV_FILE".into(), path("rabbitmq-env.conf")),
        ]
    }
}

/// Where RabbitMQ's scripts may be: `FEDIBRIDGE_TEST_RABBITMQ_BIN`, the package's own
/// directory (Debian's /usr/sbin wrappers switch to the system's `rabbitmq` user and its
/// cookie and log files, so they are avoided), then `PATH`.
fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(dir) = std::env::var("FEDIBRIDGE_TEST_RABBITMQ_BIN") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(PathBuf::from("/usr/lib/rabbitmq/bin"));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(
            std::env::split_paths(&path).filter(|dir| !is_debian_wrapper(&dir.join("rabbitmqctl"))),
        );
    }
    dirs
}

fn is_debian_wrapper(script: &Path) -> bool {
    std::fs::read_to_string(script).is_ok_and(|text| text.contains("su rabbitmq"))
}
