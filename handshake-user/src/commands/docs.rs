//! `handshake generate-docs DIR` (hidden from help): man pages and shell completions made
//! from the clap definition, so they never drift from the command line. `cargo xtask
//! package` runs it on the binary it packages.

use std::{fs, path::Path};

use anyhow::Context as _;
use clap::Command;
use clap_complete::Shell;

/// The binary lives in /usr/sbin: its man pages are system administration commands.
const SECTION: &str = "8";

/// Writes DIR/man/handshake.8 and one page per subcommand (handshake-ports-add.8, ...),
/// and DIR/completions/{handshake.bash, _handshake, handshake.fish}.
pub fn generate(command: Command, dir: &Path) -> anyhow::Result<()> {
    let mut command = without_hidden(command);
    command.build();
    let man = dir.join("man");
    let completions = dir.join("completions");
    for folder in [&man, &completions] {
        fs::create_dir_all(folder)
            .with_context(|| format!("creating {} failed", folder.display()))?;
    }
    man_pages(&command, "handshake", &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), "handshake", &completions)
            .with_context(|| format!("writing the {shell} completion failed"))?;
    }
    Ok(())
}

/// `command` without its hidden subcommands (this one): clap_complete would offer them.
/// clap cannot remove a subcommand, so the top level is made anew from its parts.
fn without_hidden(command: Command) -> Command {
    let mut visible = Command::new("handshake")
        .version(crate::build_info::VERSION)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .args(command.get_arguments().cloned())
        .subcommands(
            command
                .get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .cloned(),
        );
    if let Some(about) = command.get_about() {
        visible = visible.about(about.clone());
    }
    visible
}

/// One page for `command` named `name`, then one per visible subcommand, recursively.
fn man_pages(command: &Command, name: &str, dir: &Path) -> anyhow::Result<()> {
    let mut page = Vec::new();
    // A subcommand's page is titled by its full name, as `man handshake-ports-add` finds it.
    clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .section(SECTION)
        .render(&mut page)
        .with_context(|| format!("rendering the man page of {name} failed"))?;
    let path = dir.join(format!("{name}.{SECTION}"));
    fs::write(&path, page).with_context(|| format!("writing {} failed", path.display()))?;
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
