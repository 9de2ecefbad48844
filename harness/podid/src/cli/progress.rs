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

/// Live progress of a run: a bar over the trials on a terminal, with each finished scenario's
/// line (and failure details) printed above it; plain lines otherwise.
pub struct RunProgress<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: podid_reports::Reporter> RunProgress<R> {
    pub fn new(inner: R, trials: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(trials as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed} {wide_msg}")
                    .expect("static template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { inner, bar }
    }

    fn above<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

impl<R: podid_reports::Reporter> podid_reports::Reporter for RunProgress<R> {
    fn scenario_started(&self, scenario: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("running {scenario}")),
            None => self.inner.scenario_started(scenario),
        }
    }

    fn step_finished(&self, scenario: &str, step: &podid_reports::StepReport) {
        self.above(|| self.inner.step_finished(scenario, step));
    }

    fn scenario_finished(&self, scenario: &podid_reports::ScenarioReport) {
        self.above(|| self.inner.scenario_finished(scenario));
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn run_finished(&self, report: &podid_reports::RunReport) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.inner.run_finished(report);
    }
}
