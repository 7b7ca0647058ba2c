//! `handshake attach`, `detach` and `status`: protection that outlives the command, kept
//! by pins under the BPF filesystem (see pins.rs).

use std::{fmt::Write as _, fs, io, path::Path, time::SystemTime};

use anyhow::{Context as _, bail};
use aya::programs::{ProgramInfo, links::PinnedLink};
use handshake_common::config::Config;

use crate::{
    interface,
    kernel_tcp::KernelTcp,
    loader::Mode,
    maps::{self, Maps},
    pins::{self, PinRoot},
    ports,
    run::{prepare, validate_all},
    settings::Settings,
};

/// Attaches every interface in `all`, or none: each is checked before the first is
/// attached, and a failure part way detaches the ones this call attached.
pub fn attach(root: &PinRoot, all: &[Settings]) -> anyhow::Result<()> {
    let (configs, kernel) = validate_all(all)?;
    for settings in all {
        refuse_existing(root, &settings.iface)?;
    }
    root.prepare()?;
    for line in kernel.describe() {
        println!("{line}");
    }
    let mut attached: Vec<&str> = Vec::new();
    for (settings, config) in all.iter().zip(&configs) {
        match attach_one(root, settings, config) {
            Ok(mode) => {
                println!(
                    "handshake protects TCP ports {} on {} ({} XDP), pinned in {}; `handshake detach --iface {}` removes it",
                    ports::join(&settings.ports),
                    settings.iface,
                    mode.name(),
                    root.iface_dir(&settings.iface).display(),
                    settings.iface
                );
                attached.push(&settings.iface);
            }
            Err(error) => {
                for iface in attached {
                    let _ = detach(root, iface);
                }
                return Err(error);
            }
        }
    }
    Ok(())
}

fn refuse_existing(root: &PinRoot, iface: &str) -> anyhow::Result<()> {
    let dir = root.iface_dir(iface);
    if !dir.exists() {
        return Ok(());
    }
    if PinnedLink::from_pin(dir.join(pins::LINK)).is_ok() {
        bail!(
            "handshake already protects {iface} (pinned in {}); nothing changed. Change its ports with `handshake ports add|remove --iface {iface}`, or `handshake detach --iface {iface}` first",
            dir.display()
        );
    }
    bail!(
        "{} holds stale pins from an earlier handshake that did not finish; nothing changed. `handshake detach --iface {iface}` removes them",
        dir.display()
    )
}

fn attach_one(root: &PinRoot, settings: &Settings, config: &Config) -> anyhow::Result<Mode> {
    let dir = root.iface_dir(&settings.iface);
    fs::create_dir(&dir).with_context(|| format!("creating {} failed", dir.display()))?;
    let attached = (|| {
        let mut handshake = prepare(settings, config, Some(&dir))?;
        let mode = handshake.attach(&settings.iface, settings.mode)?;
        handshake.pin_link(&dir.join(pins::LINK))?;
        Ok(mode)
    })();
    if attached.is_err() {
        // Nothing half-applied: without its pins the program is gone with this process.
        let _ = remove_pins(&dir);
    }
    attached
}

/// Removes exactly what `attach` created for `iface`: the link pin (which detaches the
/// program), the program and map pins, and the folder.
pub fn detach(root: &PinRoot, iface: &str) -> anyhow::Result<()> {
    let dir = root.iface_dir(iface);
    if !dir.exists() {
        bail!(
            "handshake is not attached to {iface} (no {}); `handshake status` lists what it protects",
            dir.display()
        );
    }
    remove_pins(&dir)
}

fn remove_pins(dir: &Path) -> anyhow::Result<()> {
    let names = [pins::LINK, pins::PROGRAM].into_iter().chain(maps::NAMES);
    for name in names {
        match fs::remove_file(dir.join(name)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(error)
                    .with_context(|| format!("removing {} failed", dir.join(name).display()));
            }
            _ => {}
        }
    }
    fs::remove_dir(dir).with_context(|| {
        format!(
            "removing {} failed; something else was put there",
            dir.display()
        )
    })
}

/// One block per interface: mode, ports, program, since when, and the namespace's
/// cookie mode (read where `status` runs).
pub fn status(root: &PinRoot) -> anyhow::Result<String> {
    let interfaces = root.interfaces()?;
    if interfaces.is_empty() {
        return Ok(format!(
            "handshake protects nothing (no attachments in {})\n",
            root.path().display()
        ));
    }
    let mut text = String::new();
    for iface in interfaces {
        let dir = root.iface_dir(&iface);
        match describe(&dir, &iface) {
            Ok(description) => text.push_str(&description),
            Err(error) => {
                let _ = writeln!(
                    text,
                    "{iface}: stale ({error:#}); `handshake detach --iface {iface}` removes it"
                );
            }
        }
    }
    if let Ok(kernel) = KernelTcp::read() {
        for line in kernel.describe() {
            let _ = writeln!(text, "{line}");
        }
    }
    Ok(text)
}

fn describe(dir: &Path, iface: &str) -> anyhow::Result<String> {
    PinnedLink::from_pin(dir.join(pins::LINK)).context("the XDP link pin is missing")?;
    let program =
        ProgramInfo::from_pin(dir.join(pins::PROGRAM)).context("the program pin is missing")?;
    let maps = Maps::from_pins(dir)?;
    let ports = ports::join(maps.ports.list()?.keys());
    let since = program.loaded_at().map_or("unknown".to_owned(), ago);
    let present = if interface::index(iface).is_ok() {
        ""
    } else {
        " (interface not in this network namespace)"
    };
    Ok(format!(
        "{iface}: {} XDP, ports {}, program id {}, attached {since}{present}\n",
        Mode::from_config_byte(maps.config()?.mode),
        ports,
        program.id(),
    ))
}

fn ago(at: SystemTime) -> String {
    let seconds = SystemTime::now()
        .duration_since(at)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match seconds {
        0..120 => format!("{seconds} s ago"),
        120..7200 => format!("{} min ago", seconds / 60),
        _ => format!("{} h ago", seconds / 3600),
    }
}
