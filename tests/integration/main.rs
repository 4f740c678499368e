//! The single integration-test binary: one module per area.
// Tests, benches and the build script may write files and start programs directly (clippy.toml).
#![allow(clippy::disallowed_methods)]

/// Hook bad-input corpus: every case refused with its exit code and message, the host tree unchanged.
mod badinput;
/// Bad-input corpus, journals: hostile and broken journals refused, the sandbox around the root unchanged.
mod badinput_journal;
/// Bad-input corpus, setup and define: grub shell syntax on the edited lines, users that do not exist.
mod badinput_setup;
/// Bad input around the journal: planted temporaries, failed undo, errno in the one line, status.
mod badinput_undo;
/// build.rs, for its `--version` text outside a git checkout.
#[path = "../../build.rs"]
#[allow(dead_code)]
mod build_script;
/// The command line: every subcommand exists and has help.
mod cli;
/// `--version`, completions, the man page, NO_COLOR.
mod conventions;
/// `vmgpu define`: rendered domains, schema validation, refused input, `--update` rewrite.
mod define;
/// README and docs: every relative link and every cited docs/*.md exists.
mod docs_links;
/// `vmgpu explain`: every signature's fixture named first, unknown logs, fixes per distro.
mod explain;
/// A simulated host tree for the hook tests and helpers to run the binary on it.
mod fakehost;
/// The hook state machine on a simulated host: prepare, release, refusals.
mod hook;
/// Several VMs at once: shared CPU isolation and hugepage pools in every stop order, stale journals,
/// requests larger than the host.
mod hook_shared;
/// Host tuning: governor and IRQ affinity set, shared by two VMs, restored after release and crashes.
mod hook_tuning;
/// `vmgpu install` / `uninstall` never touch a foreign hook.
mod install;
/// Crash safety: SIGKILL after every prepare step, then restore.
mod journal;

/// Looking Glass protocol: producer and client end to end, slow clients, restarts, bad regions.
mod lg;

/// Property tests of the client against arbitrary and concurrently changing regions.
mod lg_fuzz;

/// A private sound server (PulseAudio or PipeWire + pipewire-pulse) for the real-server audio tests.
mod sound_server;
/// The guest agent (clipboard by demand, tokens) against a scripted server playing the agent.
mod spice_agent_fake;
/// Clipboard images (PNG) both ways against the scripted agent, pixel-exact; corrupt and 2 GiB images.
mod spice_agent_png;
/// SPICE audio: hostile playback, channels linked only when asked; with a real PulseAudio daemon (ignored; run
/// by tests/harness/42-audio-pulse.sh) the sine played sample-exact and the microphone sent.
mod spice_audio;
/// The SPICE display channel against a scripted (hostile) server.
mod spice_display_fake;
/// The SPICE session against a scripted (hostile) server.
mod spice_fake;
/// `vmgpu view` driving a real QEMU guest through SPICE (ignored; run by tests/harness/45-spice-input.sh).
mod spice_live;
/// The host clipboard (arboard) against `xclip` on Xvfb, with the scripted agent (ignored; harness 40).
#[cfg(feature = "viewer")]
mod viewer_clipboard_x11;

/// Helpers for the recorded and derived host trees.
mod fixtures;
/// One window, two sources: SPICE display until Looking Glass frames flow, and back (ignored; run by
/// tests/harness/40-viewer-x11.sh).
mod viewer_spice_x11;
/// The real viewer window on Xvfb: pixel-exact screenshots (ignored; run by tests/harness/40-viewer-x11.sh).
mod viewer_x11;

/// The host model on recorded and derived trees, and bad input.
mod host;

/// `vmgpu gpus`: GPUs as units, snapshots per machine.
mod gpus;

/// Recordings of real machines print what the live machine printed.
mod live_runs;

/// `vmgpu check`: findings, fixes and exit codes per machine, and on this machine.
mod check;

/// `vmgpu setup`: plans, apply, no-op re-run, undo, bad input.
mod setup;
/// Golden dry-run plans of `vmgpu setup` for every host fixture.
mod setup_golden;
/// Host trees for the setup tests (with a busybox userland for chroot).
mod setup_tree;
/// `vmgpu install` and `setup` on recorded host trees through the simulated kernel: the files they write, a
/// second run changing nothing.
mod sim_host;
/// The viewer's lifecycle: VM restart, second launch, truncation, corrupt queues, banner, SIGTERM (ignored; run
/// by the viewer harness).
mod viewer_life;
/// The real viewer as a Wayland client of weston nested in Xvfb (ignored; run by the viewer harness).
mod viewer_wayland;

/// `vmgpu view` without a display: VM lookup through libvirt's test driver, usage errors.
mod viewer;
