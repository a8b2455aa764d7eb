//! Reading a config file and turning every problem into `FILE:LINE:COL: field.path: message`.

use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Config, DEFAULT_PATH};

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
}

/// Why a config could not be used: the file and every problem found in it.
#[derive(Debug)]
pub enum ConfigError {
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    Invalid {
        file: PathBuf,
        errors: Vec<Located>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, source } => {
                write!(f, "{}: cannot read: {source}", file.display())
            }
            ConfigError::Invalid { file, errors } => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    let path = if e.path.is_empty() {
                        "(document)"
                    } else {
                        &e.path
                    };
                    write!(
                        f,
                        "{}:{}:{}: {}: {}",
                        file.display(),
                        e.line,
                        e.column,
                        path,
                        e.message
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Largest config file read. The shipped config is 8 KB and a config of a thousand rules stays
/// under 1 MiB; anything bigger is a mistake (or `/dev/zero` behind a symlink would be read
/// until memory runs out).
pub const MAX_BYTES: u64 = 1 << 20;

/// Reads and validates `file`: a regular file, not empty, valid UTF-8, at most `MAX_BYTES`.
pub fn load_file(file: &Path) -> Result<Config, ConfigError> {
    let bytes = read_regular(file, MAX_BYTES).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let invalid = |offset: usize, text: &str, message: String| {
        let (line, column) = line_col(text, offset);
        ConfigError::Invalid {
            file: file.to_path_buf(),
            errors: vec![Located {
                line,
                column,
                path: String::new(),
                message,
            }],
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let bad = e.as_bytes().get(good).copied().unwrap_or_default();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..good]).into_owned();
            return Err(invalid(
                good,
                &prefix,
                format!("invalid UTF-8 (byte 0x{bad:02x}); a config file is UTF-8 text"),
            ));
        }
    };
    // An editor truncates before it writes and a full disk leaves 0 bytes: taking that as
    // "use the defaults" would silently replace the operator's rules and state dir.
    if text.trim().is_empty() {
        return Err(invalid(
            0,
            "",
            "the file is empty (a truncated write?); to run on the built-in defaults, \
             put a comment in it or remove it"
                .to_owned(),
        ));
    }
    parse_str(&text, file)
}

/// Opens `file` without blocking (a FIFO would wait for a writer) and reads it only if it is a
/// regular file, at most `max` bytes. The type is checked on the opened descriptor, so a swap
/// between a check and the open cannot slip a FIFO or a device in.
fn read_regular(file: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(file)?;
    let meta = f.metadata()?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    };
    if let Some(what) = what {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what}; only a regular file is read as config"),
        ));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "{} bytes, more than the {max} a config may have",
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::new();
    // The file may grow after the stat: the read stops at the bound all the same.
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("more than the {max} bytes a config may have"),
        ));
    }
    Ok(bytes)
}

/// `--config PATH` must exist; without it, a missing default file means built-in defaults.
pub fn load_or_default(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
    match explicit {
        Some(p) => load_file(p).map(|c| (c, Some(p.to_path_buf()))),
        None => {
            let p = Path::new(DEFAULT_PATH);
            match std::fs::metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Config::default(), None)),
                _ => load_file(p).map(|c| (c, Some(p.to_path_buf()))),
            }
        }
    }
}

/// Parses `text` (named `file` in messages) into a validated config.
pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let invalid = |errors| ConfigError::Invalid {
        file: file.to_path_buf(),
        errors,
    };
    let de = match toml::de::Deserializer::parse(text) {
        Ok(de) => de,
        Err(e) => {
            let (offset, message) = locate_syntax_error(text, e.span(), e.message().trim());
            let (line, column) = line_col(text, offset);
            return Err(invalid(vec![Located {
                line,
                column,
                path: String::new(),
                message,
            }]));
        }
    };
    // The document parsed as TOML, so toml_edit can too: it gives spans for any field path.
    let doc = toml_edit::Document::parse(text).ok();
    let config: Config = match serde_path_to_error::deserialize(de) {
        Ok(c) => c,
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let inner = e.into_inner();
            let span = inner
                .span()
                .or_else(|| doc.as_ref().and_then(|d| span_of(d, &path)));
            let (line, column) = line_col(text, span.map_or(0, |s| s.start));
            let message = describe(doc.as_ref(), &path, inner.message().trim());
            return Err(invalid(vec![Located {
                line,
                column,
                path,
                message,
            }]));
        }
    };
    let problems = config.validate();
    if problems.is_empty() {
        return Ok(config);
    }
    let located = problems
        .into_iter()
        .map(|fe| {
            let span = doc.as_ref().and_then(|d| span_of(d, &fe.path));
            let (line, column) = line_col(text, span.map_or(0, |s| s.start));
            Located {
                line,
                column,
                message: describe(doc.as_ref(), &fe.path, &fe.message),
                path: fe.path,
            }
        })
        .collect();
    Err(invalid(located))
}

/// Where a TOML syntax error is and what to say about it, where the parser leaves out what an
/// operator needs: a duplicate key gets its name (the span covers it), and a key nested too
/// deeply (toml reports it without a span) is found by counting its dotted parts.
fn locate_syntax_error(text: &str, span: Option<Range<usize>>, message: &str) -> (usize, String) {
    match span {
        Some(s) if message == "duplicate key" => {
            let key = text.get(s.clone()).unwrap_or_default().trim();
            (s.start, format!("duplicate key `{key}`"))
        }
        Some(s) => (s.start, message.to_owned()),
        None if message == "recursion limit" => match deepest_key(text) {
            Some((offset, depth)) => (
                offset,
                format!("key nested {depth} levels deep; TOML parsing stops at {TOML_KEY_DEPTH}"),
            ),
            None => (0, message.to_owned()),
        },
        None => (0, message.to_owned()),
    }
}

/// The toml crate's limit on the parts of one dotted key (`LIMIT` in its parser).
const TOML_KEY_DEPTH: usize = 80;

/// Offset and depth of the first key (a `[table.header]` or a `dotted.key =`) with at least
/// `TOML_KEY_DEPTH` parts. Dots inside quotes do not count.
fn deepest_key(text: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let start = offset + (line.len() - trimmed.len());
        offset += line.len();
        let key = match trimmed.strip_prefix('[') {
            Some(header) => header.trim_start_matches('[').split(']').next(),
            None => trimmed.split('=').next(),
        }?;
        let mut parts = 1;
        let mut quote = None;
        for c in key.chars() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '.') => parts += 1,
                _ => {}
            }
        }
        if parts >= TOML_KEY_DEPTH {
            return Some((start, parts));
        }
    }
    None
}

/// Names the rule (by its `name`) when the error is inside `rules[N]`, since operators know
/// rules by name, not by position.
fn describe(doc: Option<&toml_edit::Document<&str>>, path: &str, message: &str) -> String {
    let rule_name = path
        .strip_prefix("rules[")
        .and_then(|rest| rest.split(']').next())
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| {
            doc?.get("rules")?
                .get(i)?
                .get("name")?
                .as_str()
                .map(str::to_owned)
        });
    match rule_name {
        Some(name) if !name.trim().is_empty() && !message.contains(&format!("rule \"{name}\"")) => {
            format!("rule \"{name}\": {message}")
        }
        _ => message.to_owned(),
    }
}

/// Span of the deepest existing item along `path` (`a.b[2].c`), so a missing field points at
/// its table.
fn span_of(doc: &toml_edit::Document<&str>, path: &str) -> Option<Range<usize>> {
    let mut item: &toml_edit::Item = doc.as_item();
    let mut best = None;
    for seg in path_segments(path) {
        let next = match seg {
            Seg::Key(k) => item.get(k),
            Seg::Index(i) => item.get(i),
        };
        match next {
            Some(n) => {
                item = n;
                if let Some(s) = n.span() {
                    best = Some(s);
                } else if let Some(t) = n.as_table() {
                    best = t.span().or(best);
                }
            }
            None => break,
        }
    }
    // Tables declared with a header have no span of their own in toml_edit; fall back to the
    // position of their first key.
    best.or_else(|| item.as_table_like()?.iter().find_map(|(_, v)| v.span()))
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn path_segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(bracket) = rest.find('[') {
            let key = &rest[..bracket];
            if !key.is_empty() {
                out.push(Seg::Key(key));
            }
            rest = &rest[bracket..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(i) = stripped[..end].parse() {
                    out.push(Seg::Index(i));
                }
                rest = &stripped[end + 1..];
            }
        } else {
            out.push(Seg::Key(rest));
        }
    }
    out
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
