//! Logging to stderr. Under systemd (JOURNAL_STREAM set) each line starts with a `<N>` syslog
//! priority that journald turns into the entry's level, without colours or timestamps (the
//! journal adds its own). `HOSTWARDEN_LOG` (or `RUST_LOG`) filters, default `info`.

use std::fmt;
use std::io::IsTerminal;

pub mod repeat;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

struct Journald;

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let prio = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(w, "<{prio}>")?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(w, "{}", span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(w, "{{{fields}}}")?;
                }
                w.write_str(": ")?;
            }
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Installs the global subscriber. Noisy transport crates are held at `warn` so exporting
/// telemetry never generates telemetry about itself (export failures are counted and logged
/// once per outage by the exporters module).
///
/// The filter is `target=level` directives (`Targets`), not `EnvFilter`: its span and field
/// matching needs the regex engine (regex-automata, regex-syntax, matchers) in the binary for
/// syntax nobody used (issue 20).
pub fn init() {
    let spec = std::env::var("HOSTWARDEN_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = format!("{spec},hyper=warn,hyper_util=warn,h2=warn,zbus=warn")
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new().with_default(Level::INFO));
    // The builder's own filter would stop at `info`: let everything through to `filter`.
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::level_filters::LevelFilter::TRACE)
        .with_writer(std::io::stderr);
    let result = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder
            .with_ansi(false)
            .event_format(Journald)
            .finish()
            .with(filter)
            .try_init()
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(filter)
            .try_init()
    };
    // A second init (tests) keeps the first subscriber; nothing to do.
    drop(result);
}
