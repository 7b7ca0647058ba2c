//! nginx (Debian's nginx-light) as the real service in the server namespace: one worker
//! pinned to the server core, a small static reply, everything in a temporary folder.

use std::{
    fs,
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use handshake::lab::{Lab, SERVER_V4, run_in};

pub const PORT: u16 = 80;
pub const BODY: &str = "handshake bench\n";

pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx in the lab's server namespace and waits until it accepts.
    pub fn start(lab: &Lab, server_cpu: usize) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{}-nginx", lab.server));
        fs::create_dir_all(dir.join("logs"))?;
        let config = dir.join("nginx.conf");
        fs::write(&config, config_text(&dir, server_cpu))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.server, "nginx", "-p"])
            .arg(&dir)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx failed; `cargo xtask bench` installs nginx-light")?;
        let mut nginx = Self { child, dir };
        nginx.wait_ready(lab)?;
        Ok(nginx)
    }

    fn wait_ready(&mut self, lab: &Lab) -> anyhow::Result<()> {
        let server = SocketAddr::new(SERVER_V4.into(), PORT);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Some(status) = self.child.try_wait()? {
                let log = fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default();
                bail!("nginx exited ({status}): {log}");
            }
            if run_in(&lab.client, move || {
                TcpStream::connect_timeout(&server, Duration::from_millis(200)).is_ok()
            })? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("nginx did not accept on {server} within 5 s")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown, master and worker.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn config_text(dir: &std::path::Path, server_cpu: usize) -> String {
    let dir = dir.display();
    let mut affinity = "0".repeat(server_cpu + 1);
    affinity.replace_range(0..1, "1");
    format!(
        "daemon off;\nuser root;\nworker_processes 1;\nworker_cpu_affinity {affinity};\npid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log warn;\n\
events {{ worker_connections 4096; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
  server {{\n    listen {PORT};\n    listen [::]:{PORT};\n    location / {{ return 200 \"{}\"; }}\n  }}\n}}\n",
        BODY.replace('\n', "\\n")
    )
}
