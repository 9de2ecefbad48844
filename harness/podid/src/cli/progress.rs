//! Progress displays: toolchain builds and scenario runs (indicatif on a terminal, plain lines
//! otherwise).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use podid_toolchain::{BuildEvent, BuildObserver, Component};

/// Renders toolchain build events: a spinner per component on a terminal, lines otherwise.
pub struct BuildProgress {
    bars: MultiProgress,
    active: Mutex<HashMap<Component, ProgressBar>>,
    interactive: bool,
}

impl BuildProgress {
    pub fn new() -> Self {
        let interactive = std::io::stderr().is_terminal();
        let target = if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            bars: MultiProgress::with_draw_target(target),
            active: Mutex::new(HashMap::new()),
            interactive,
        }
    }

    pub fn finish(&self) {
        for (_, bar) in self.active.lock().expect("progress lock").drain() {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        if self.interactive {
            let _ = self.bars.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl Default for BuildProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildObserver for BuildProgress {
    fn event(&self, ev: BuildEvent) {
        match ev {
            BuildEvent::Started {
                component,
                estimate,
            } => {
                self.line(format!(
                    "building {component:?} (about {}s on 2 cores, first time only)",
                    estimate.as_secs()
                ));
                if self.interactive {
                    let bar = self.bars.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix:.bold} {elapsed} {wide_msg}",
                        )
                        .expect("static template"),
                    );
                    bar.set_prefix(format!("{component:?}"));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.active
                        .lock()
                        .expect("progress lock")
                        .insert(component, bar);
                }
            }
            BuildEvent::Output { component, line } => {
                if let Some(bar) = self.active.lock().expect("progress lock").get(&component) {
                    bar.set_message(line);
                }
            }
            BuildEvent::Finished {
                component,
                duration,
            } => {
                if let Some(bar) = self
                    .active
                    .lock()
                    .expect("progress lock")
                    .remove(&component)
                {
                    bar.finish_and_clear();
                }
                self.line(format!(
                    "built {component:?} in {:.0}s",
                    duration.as_secs_f64()
                ));
            }
            BuildEvent::Cached { component } => tracing::info!("{component:?} is cached"),
            BuildEvent::Overridden {
                artifact,
                path,
                version,
            } => self.line(format!(
                "using {} for {artifact:?} ({version})",
                path.display()
            )),
            BuildEvent::WaitingForLock { lock } => self.line(format!(
                "waiting for another build to finish ({})",
                lock.display()
            )),
            BuildEvent::InstallingPackages { packages } => self.line(format!(
                "installing system packages: {}",
                packages.join(" ")
            )),
            BuildEvent::InstallOutput { line } => tracing::debug!("apt: {line}"),
            other => tracing::debug!(?other, "toolchain event"),
        }
    }
}
