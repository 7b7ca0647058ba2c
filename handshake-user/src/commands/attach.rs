//! `handshake attach`, `detach` and `status`: protection that outlives the command, kept
//! by pins under the BPF filesystem (see pins.rs), reported as the kernel sees it (see
//! state.rs).

use std::{
    fmt::Write as _,
    fs, io,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, bail};
use handshake_common::config::Config;
use serde_json::{Value, json};

use crate::{
    build_info,
    capture::{self, Sampling},
    gone::{self, GoneFolder},
    kernel_tcp::KernelTcp,
    loader::Mode,
    maps,
    pins::{self, PinRoot},
    ports,
    rate_limits::{self, Limits},
    run::{prepare, validate_all},
    settings::Settings,
    source_lists::List,
    state::{self, Inspected, Pinned},
    upgrade,
};

/// Attaches every interface in `all`, or none: each is checked before the first is
/// attached, a failure part way detaches the ones this call attached, and nothing is
/// printed as done before all are.
pub fn attach(root: &PinRoot, all: &[Settings]) -> anyhow::Result<()> {
    let (configs, kernel) = validate_all(all)?;
    let _lock = root.prepare_locked()?;
    let mut dead = Vec::new();
    let mut upgrades = Vec::new();
    for (settings, config) in all.iter().zip(&configs) {
        match existing(root, &settings.iface)? {
            Existing::None => {}
            Existing::Dead(problem) => dead.push((root.iface_dir(&settings.iface), problem)),
            Existing::OtherBuild(pinned) => upgrades.push((settings, config, pinned)),
        }
    }
    for (dir, problem) in dead {
        log::warn!("replacing the pins in {}: {problem}", dir.display());
        remove_pins(&dir)?;
    }
    let mut done: Vec<String> = kernel.describe().into();
    let mut attached: Vec<&str> = Vec::new();
    let fresh = all
        .iter()
        .zip(&configs)
        .filter(|(settings, _)| !upgrades.iter().any(|(up, _, _)| up.iface == settings.iface));
    for (settings, config) in fresh {
        match attach_one(root, settings, config) {
            Ok(mode) => {
                done.push(format!(
                    "handshake protects TCP ports {} on {} ({} XDP{}), pinned in {}; {} removes it",
                    ports::join(&settings.ports),
                    settings.iface,
                    mode.name(),
                    settings.dry_run_note(),
                    root.iface_dir(&settings.iface).display(),
                    root.command(&format!("detach --iface {}", settings.iface))
                ));
                attached.push(&settings.iface);
            }
            Err(error) => {
                for iface in attached {
                    let running = crate::interface::xdp_program(iface);
                    let _ = remove_pins(&root.iface_dir(iface));
                    if let Some(running) = running {
                        let _ = wait_until_detached(iface, running.id);
                    }
                }
                root.remove_if_empty();
                return Err(error);
            }
        }
    }
    // After the fresh ones, which a failure here still takes back; each upgrade is whole
    // or not at all (upgrade.rs).
    for (settings, config, pinned) in &upgrades {
        done.push(upgrade::upgrade(
            root,
            settings,
            config,
            pinned,
            crate::XDP_OBJECT,
        )?);
    }
    for line in done {
        println!("{line}");
    }
    Ok(())
}

/// What already holds an interface's pin folder.
enum Existing {
    None,
    /// Pins that protect nothing any more (the interface was recreated, the link
    /// detached, an attach did not finish), to be replaced; and why.
    Dead(String),
    /// Another build of handshake protects it: upgraded in place.
    OtherBuild(Box<Pinned>),
}

/// Refuses an interface this build already protects.
fn existing(root: &PinRoot, iface: &str) -> anyhow::Result<Existing> {
    let dir = root.iface_dir(iface);
    if !root.has(iface)? {
        return Ok(Existing::None);
    }
    match state::inspect(root, iface) {
        Inspected::Protected(pinned) if upgrade::is_other_build(&pinned)? => {
            Ok(Existing::OtherBuild(Box::new(pinned)))
        }
        Inspected::Protected(_) => bail!(
            "handshake already protects {iface} (pinned in {}); nothing changed. Change its ports with {}, or {} first",
            dir.display(),
            root.command(&format!("ports add|remove --iface {iface}")),
            root.command(&format!("detach --iface {iface}"))
        ),
        gone => Ok(gone
            .problem()
            .map_or(Existing::None, |problem| Existing::Dead(problem.to_owned()))),
    }
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
/// program), the program and map pins, and the folder. Says what the pins protected.
pub fn detach(root: &PinRoot, iface: &str) -> anyhow::Result<String> {
    crate::interface::check_name(iface)?;
    let _lock = root.lock()?;
    let dir = root.iface_dir(iface);
    if !root.has(iface)? {
        return Err(state::not_attached(root, iface));
    }
    let inspected = state::inspect(root, iface);
    let program_id = inspected.pinned().map(|pinned| pinned.program_id);
    let was = inspected.problem().map(str::to_owned);
    drop(inspected);
    remove_pins(&dir)?;
    root.remove_if_empty();
    if let Some(id) = program_id {
        wait_until_detached(iface, id)?;
    }
    Ok(match was {
        None => format!("handshake no longer protects {iface}"),
        Some(problem) => {
            format!("removed the pins of {iface}, which protected nothing any more ({problem})")
        }
    })
}

/// `detach --gone`: removes the folders of network namespaces that are gone (see
/// gone.rs), each under its lock, and says what it removed; a second call finds nothing.
/// Never a namespace alive: its cookie is found, or its interfaces still run the links.
pub fn detach_gone(root: &PinRoot) -> anyhow::Result<Vec<String>> {
    let found = gone::find(root).context("nothing removed")?;
    let mut done = Vec::new();
    for GoneFolder { folder, .. } in found {
        // Another `detach --gone` may be removing it: the lock waits, then finds no folder.
        let Some(_lock) = folder.lock()? else {
            continue;
        };
        let interfaces = folder.interfaces()?;
        for iface in &interfaces {
            remove_pins(&folder.iface_dir(iface))?;
        }
        fs::remove_dir(folder.path()).with_context(|| {
            format!(
                "removing {} failed; something else was put there",
                folder.path().display()
            )
        })?;
        done.push(format!(
            "removed {}: the pins of a network namespace that is gone ({})",
            folder.path().display(),
            interface_list(&interfaces)
        ));
    }
    if done.is_empty() {
        done.push(format!(
            "no pins of a network namespace that is gone under {}",
            root.root().display()
        ));
    } else {
        // The root goes with the last folder, as after the last detach.
        let _ = fs::remove_dir(root.root());
    }
    Ok(done)
}

/// `interfaces: a, b` (or `interfaces: none`) for the lines about a gone folder.
fn interface_list(interfaces: &[String]) -> String {
    if interfaces.is_empty() {
        "interfaces: none".to_owned()
    } else {
        format!("interfaces: {}", interfaces.join(", "))
    }
}

/// The folders of namespaces that are gone, for `status`: when that cannot be told for
/// sure, none (and why, at debug level): `status` never guesses.
fn gone_folders(root: &PinRoot) -> Vec<GoneFolder> {
    gone::find(root)
        .inspect_err(|error| {
            log::debug!("not telling which network namespaces are gone: {error:#}")
        })
        .unwrap_or_default()
}

/// The kernel releases a link whose last pin is gone from a work queue
/// (`bpf_link_put`), a moment after the unlink: wait for it, so that "no longer protects"
/// is true when it is printed.
fn wait_until_detached(iface: &str, program_id: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while crate::interface::xdp_program(iface).is_some_and(|running| running.id == program_id) {
        if Instant::now() > deadline {
            bail!(
                "removed the pins of {iface}, but after 2 s the kernel still runs handshake's program (id {program_id}) on it; `ip link show dev {iface}` shows it"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn remove_pins(dir: &Path) -> anyhow::Result<()> {
    let names = [pins::LINK, pins::PROGRAM].into_iter().chain(maps::NAMES);
    // With those an interrupted upgrade left beside them (upgrade.rs).
    let names = names.flat_map(|name| [name.to_owned(), format!("{name}{}", crate::loader::NEXT)]);
    for name in names {
        match fs::remove_file(dir.join(&name)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(error)
                    .with_context(|| format!("removing {} failed", dir.join(&name).display()));
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

/// One interface as `status` reports it.
struct Entry {
    iface: String,
    /// "attach" (pinned) or "run".
    by: &'static str,
    program_id: Option<u32>,
    /// The kernel's tag of the program it runs (`build_info`).
    tag: Option<u64>,
    mode: Option<&'static str>,
    ports: Vec<u16>,
    since: Option<SystemTime>,
    /// Why it is not protected, when it is not.
    problem: Option<String>,
    /// What changed on the host since attach (`Pinned::changed_since_attach`).
    changed: Vec<&'static str>,
    /// Whether it counts verdicts without enforcing them (`handshake dry-run`).
    dry_run: Option<bool>,
    /// How many prefixes the allow and deny lists hold.
    allow: Option<usize>,
    deny: Option<usize>,
    /// The SYN rate limits (`handshake limit`).
    limits: Option<Limits>,
    /// Whether the program samples packets, and for which capture (`capture.rs`).
    sampling: Option<Sampling>,
}

fn entries(root: &PinRoot) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for iface in root.interfaces()? {
        let inspected = state::inspect(root, &iface);
        let pinned = inspected.pinned();
        let entry = Entry {
            by: "attach",
            program_id: pinned.map(|pinned| pinned.program_id),
            tag: pinned.and_then(|pinned| build_info::tag_of(pinned.program_id)),
            mode: pinned.map(Pinned::mode),
            ports: pinned.map(Pinned::ports).unwrap_or_default(),
            since: pinned.and_then(|pinned| pinned.loaded_at),
            problem: inspected.problem().map(str::to_owned),
            changed: pinned
                .filter(|_| inspected.problem().is_none())
                .map(Pinned::changed_since_attach)
                .unwrap_or_default(),
            dry_run: pinned.and_then(Pinned::dry_run),
            allow: pinned.and_then(|pinned| pinned.list_len(List::Allow)),
            deny: pinned.and_then(|pinned| pinned.list_len(List::Deny)),
            limits: pinned.and_then(|pinned| rate_limits::read(&pinned.maps).ok()),
            sampling: pinned
                .and_then(|pinned| pinned.maps.config().ok())
                .and_then(|config| capture::sampling(&config)),
            iface,
        };
        entries.push(entry);
    }
    let pinned: Vec<u32> = entries.iter().filter_map(|e| e.program_id).collect();
    for program in state::run_programs(&pinned) {
        entries.push(Entry {
            iface: program.iface,
            by: "run",
            program_id: Some(program.id),
            tag: build_info::tag_of(program.id),
            mode: None,
            ports: Vec::new(),
            since: None,
            problem: None,
            changed: Vec::new(),
            dry_run: None,
            allow: None,
            deny: None,
            limits: None,
            sampling: None,
        });
    }
    entries.sort_by(|a, b| a.iface.cmp(&b.iface));
    Ok(entries)
}

/// One line per interface: protected or not (and why), mode, ports, program, since when;
/// then the namespace's cookie mode (read where `status` runs).
pub fn status(root: &PinRoot) -> anyhow::Result<String> {
    let entries = entries(root)?;
    let own = own_tag(&entries);
    let mut text = String::new();
    for folder in root.foreign_folders() {
        let _ = writeln!(
            text,
            "note: {} is no network namespace's folder (pins of a handshake from before folders per namespace?); what it pins stays attached until `rm -r {}`",
            folder.display(),
            folder.display()
        );
    }
    for GoneFolder { folder, interfaces } in gone_folders(root) {
        let _ = writeln!(
            text,
            "note: {} holds the pins of a network namespace that is gone ({}): they protect nothing and hold kernel memory until {}",
            folder.path().display(),
            interface_list(&interfaces),
            root.command("detach --gone")
        );
    }
    if entries.is_empty() {
        let _ = writeln!(
            text,
            "handshake protects nothing in this network namespace (no attachments in {})",
            root.path().display()
        );
        return Ok(text);
    }
    for entry in &entries {
        let iface = &entry.iface;
        let line = match (&entry.problem, entry.by) {
            (Some(problem), _) => format!("{iface}: NOT PROTECTED: {problem}"),
            (None, "run") => format!(
                "{iface}: protected by `handshake run` (program id {} tag {}), not pinned: it stops with that process",
                entry.program_id.unwrap_or(0),
                entry.tag.map_or("unknown".to_owned(), build_info::tag_hex)
            ),
            (None, _) => format!(
                "{iface}: {} XDP, ports {}, program id {} tag {}, attached {}",
                entry.mode.unwrap_or("unknown"),
                ports::join(&entry.ports),
                entry.program_id.unwrap_or(0),
                entry.tag.map_or("unknown".to_owned(), build_info::tag_hex),
                entry.since.map_or("unknown".to_owned(), ago)
            ),
        };
        let _ = writeln!(text, "{line}");
        if entry.problem.is_none() && entry.dry_run == Some(true) {
            let _ = writeln!(
                text,
                "{iface}: DRY RUN: every verdict is counted, every packet passes to the kernel; {} enforces",
                root.command(&format!("dry-run --iface {iface} off"))
            );
        }
        match &entry.sampling {
            Some(Sampling {
                owner,
                running: true,
            }) => {
                let _ = writeln!(
                    text,
                    "{iface}: SAMPLING packets for a capture or top (pid {owner})"
                );
            }
            Some(Sampling {
                owner,
                running: false,
            }) => {
                let _ = writeln!(
                    text,
                    "{iface}: SAMPLING LEFT ON by a capture that is gone (pid {owner}, killed?): each sampled frame costs the program about 5 helper calls; {} turns it off",
                    root.command(&format!("capture --iface {iface} --stop"))
                );
            }
            None => {}
        }
        if let (Some(allow), Some(deny)) = (entry.allow, entry.deny)
            && allow + deny > 0
        {
            let _ = writeln!(
                text,
                "{iface}: sources: allow list {allow} prefixes, deny list {deny} prefixes; {} shows them",
                root.command(&format!("allow|deny list --iface {iface}"))
            );
        }
        if let Some(limits) = entry.limits.filter(|limits| !limits.is_off()) {
            let _ = writeln!(
                text,
                "{iface}: rate limits {}; {} shows them",
                limits.describe(),
                root.command(&format!("limit show --iface {iface}"))
            );
        }
        if let Some(other) = other_build(entry, own.as_ref()) {
            let _ = writeln!(
                text,
                "{iface}: OTHER BUILD: it runs XDP program tag {other}, this binary (handshake {}) loads tag {}; {} puts this build in place, keeping ports, lists and counters",
                build_info::VERSION,
                own.as_ref()
                    .map_or("unknown".to_owned(), |own| build_info::tag_hex(*own)),
                root.command(&format!(
                    "attach --iface {iface} --ports {}",
                    ports::join(&entry.ports)
                ))
            );
        }
        if !entry.changed.is_empty() {
            let _ = writeln!(
                text,
                "{iface}: STALE: changed since attach: {}; the program still answers with what it was given at attach, which may differ from the kernel's; run {} and {} (`handshake run` follows these changes itself)",
                entry.changed.join(", "),
                root.command(&format!("detach --iface {iface}")),
                root.command(&format!(
                    "attach --iface {iface} --ports {}",
                    ports::join(&entry.ports)
                ))
            );
        }
    }
    if let Ok(kernel) = KernelTcp::read() {
        for line in kernel.describe() {
            let _ = writeln!(text, "{line}");
        }
    }
    Ok(text)
}

/// `status --json`: the same, for programs (schema in README.md).
pub fn status_json(root: &PinRoot) -> anyhow::Result<Value> {
    let entries = entries(root)?;
    let own = own_tag(&entries);
    let interfaces: Vec<Value> = entries
        .into_iter()
        .map(|entry| {
            let same_build = match (entry.tag, own) {
                (Some(tag), Some(own)) => Some(tag == own),
                _ => None,
            };
            json!({
                "iface": entry.iface,
                "protected": entry.problem.is_none(),
                "by": entry.by,
                "problem": entry.problem,
                "program_id": entry.program_id,
                "program_tag": entry.tag.map(build_info::tag_hex),
                "same_build": same_build,
                "xdp_mode": entry.mode,
                "ports": entry.ports,
                "attached_seconds_ago": entry.since.map(seconds_ago),
                "changed_since_attach": entry.changed,
                "dry_run": entry.dry_run,
                "allow_prefixes": entry.allow,
                "deny_prefixes": entry.deny,
                "limits": entry.limits.map(|limits| limits.json()),
                "sampling": entry.sampling.as_ref().map(|sampling| json!({
                    "pid": sampling.owner,
                    "running": sampling.running,
                })),
            })
        })
        .collect();
    let gone: Vec<Value> = gone_folders(root)
        .into_iter()
        .map(|GoneFolder { folder, interfaces }| {
            json!({
                "pin_dir": folder.path(),
                "netns_cookie": folder.cookie(),
                "interfaces": interfaces,
                "remove_with": root.command_line("detach --gone"),
            })
        })
        .collect();
    Ok(json!({
        "pin_dir": root.path(),
        "version": build_info::VERSION,
        "program_tag": own.map(build_info::tag_hex),
        "interfaces": interfaces,
        "gone_namespaces": gone
    }))
}

/// The tag of the program this binary loads, when some interface runs one to compare it
/// with (loading it costs a verifier run). A failure leaves the comparison out, with a
/// warning: it must not hide what `status` knows of the interfaces.
fn own_tag(entries: &[Entry]) -> Option<u64> {
    if entries.iter().all(|entry| entry.tag.is_none()) {
        return None;
    }
    build_info::own_tag()
        .inspect_err(|error| {
            log::warn!("cannot tell whether the interfaces run this build's program: {error:#}")
        })
        .ok()
}

/// The running program's tag when it is not this binary's.
fn other_build(entry: &Entry, own: Option<&u64>) -> Option<String> {
    let tag = entry.tag?;
    (entry.problem.is_none() && own.is_some_and(|own| *own != tag))
        .then(|| build_info::tag_hex(tag))
}

fn seconds_ago(at: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(at)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ago(at: SystemTime) -> String {
    let seconds = seconds_ago(at);
    match seconds {
        0..120 => format!("{seconds} s ago"),
        120..7200 => format!("{} min ago", seconds / 60),
        _ => format!("{} h ago", seconds / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, other_build};

    fn entry(tag: Option<u64>, problem: Option<&str>) -> Entry {
        Entry {
            iface: "eth0".to_owned(),
            by: "attach",
            program_id: Some(7),
            tag,
            mode: Some("native"),
            ports: vec![443],
            since: None,
            problem: problem.map(str::to_owned),
            changed: Vec::new(),
            dry_run: Some(false),
            allow: Some(0),
            deny: Some(0),
            limits: None,
            sampling: None,
        }
    }

    #[test]
    fn another_build_is_named_only_when_both_tags_are_known_and_differ() {
        let own = 0x0123_4567_89ab_cdef;
        assert_eq!(
            other_build(&entry(Some(0xfeed), None), Some(&own)).as_deref(),
            Some("000000000000feed")
        );
        assert_eq!(other_build(&entry(Some(own), None), Some(&own)), None);
        assert_eq!(other_build(&entry(Some(0xfeed), None), None), None);
        assert_eq!(other_build(&entry(None, None), Some(&own)), None);
        // Not protected: the problem line says what to do.
        assert_eq!(
            other_build(&entry(Some(0xfeed), Some("gone")), Some(&own)),
            None
        );
    }
}
