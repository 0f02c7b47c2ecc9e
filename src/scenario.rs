//! Scenario suites: the explanation jobs gsmile is evaluated on, labelled by their cell of
//! the operational design domain (ODD).
//!
//! A suite is a folder holding `suite.toml` and one TOML file per scenario:
//!
//! ```toml
//! # suite.toml
//! name = "odd-world"
//! description = "what the suite covers"
//! [axes]                      # the ODD axes and the values a scenario may take on each
//! time_of_day = ["day", "dusk", "night"]
//! weather = ["clear", "fog", "snow"]
//! ```
//!
//! ```toml
//! # 001-day-clear-car-red-polite.toml
//! id = "odd-world-001"
//! image = "images/001.png"            # relative to the suite folder, or absolute
//! masks = "images/001-masks"          # optional: folder of <object>.png binary masks
//! instruction = "please make the car red"
//! paraphrases = ["paint the car red", "could you turn the car red?"]
//! key_words = ["car", "red"]          # words of the instruction that carry the edit
//! related_images = ["images/001-b.png"]   # optional: the same edit on related scenes
//! [odd]                               # one allowed value per axis of suite.toml
//! time_of_day = "day"
//! weather = "clear"
//! ```
//!
//! Loading checks everything a later stage would trip over and reports it as
//! `file:line: field ...` with the fix, so a suite edited by hand fails at load time with a
//! message that points at the line, never halfway through a run. Scenario files are read in
//! file-name order; ids must be unique within a suite. [`shard`] splits a suite
//! deterministically across machines or CI jobs.

// Errors here carry the paths, fields and fixes a user needs; they are returned on cold
// load paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// File name of a suite's description inside its folder.
pub const SUITE_FILE: &str = "suite.toml";

/// A loaded scenario suite: its ODD axes and its scenarios in file-name order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    /// Short name of the suite (`suite.toml`'s `name`).
    pub name: String,
    /// What the suite covers (`suite.toml`'s `description`).
    pub description: String,
    /// The suite folder, as given to [`load_suite`].
    pub dir: PathBuf,
    /// ODD axis name → the values a scenario may give it.
    pub axes: BTreeMap<String, Vec<String>>,
    /// The scenarios, sorted by file name.
    pub scenarios: Vec<Scenario>,
}

/// One explanation job: an image, an instruction and its ground truth, with its ODD cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Unique id within the suite (letters, digits, `-`, `_`, `.`), usable as a folder name.
    pub id: String,
    /// The scenario file it was read from.
    pub file: PathBuf,
    /// The input image, resolved against the suite folder; it exists.
    pub image: PathBuf,
    /// Folder of `<object>.png` binary masks of the image, resolved; it exists.
    pub masks: Option<PathBuf>,
    /// The editing instruction to explain.
    pub instruction: String,
    /// The same edit phrased otherwise; each contains every key word.
    pub paraphrases: Vec<String>,
    /// Ground-truth key words: words of the instruction that carry the edit.
    pub key_words: Vec<String>,
    /// Images of related scenes the same instruction applies to, resolved; they exist.
    pub related_images: Vec<PathBuf>,
    /// ODD axis → this scenario's value (one per axis of the suite).
    pub odd: BTreeMap<String, String>,
}

/// Why a suite, a scenario file or a shard specification was rejected.
///
/// Every variant about a file names the file and the 1-based line, and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A file or folder could not be read.
    #[error("{}: cannot read: {source}; check that the path exists and is readable", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The folder has no `suite.toml`.
    #[error(
        "{}: not a scenario suite: there is no {SUITE_FILE}; a suite folder holds {SUITE_FILE} \
         (name, description, [axes]) and one .toml file per scenario",
        dir.display()
    )]
    NoSuiteFile {
        /// The folder given.
        dir: PathBuf,
    },
    /// The suite folder holds no scenario file.
    #[error("{}: the suite has no scenario files; add one <NNN>-<slug>.toml per scenario", dir.display())]
    NoScenarios {
        /// The suite folder.
        dir: PathBuf,
    },
    /// TOML syntax error, missing field, unknown field or wrong type (as reported by `toml`).
    #[error("{}:{line}:{column}: {message}; {hint}", file.display())]
    Toml {
        /// The file.
        file: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The field concerned, when the TOML error names one.
        field: Option<String>,
        /// The TOML parser's message.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// An axis in `suite.toml` lists no values.
    #[error(
        "{}:{line}: axes.{axis} lists no values; give the values a scenario may take, \
         e.g. {axis} = [\"a\", \"b\"], or remove the axis",
        file.display()
    )]
    EmptyAxis {
        /// The suite.toml file.
        file: PathBuf,
        /// Line of the axis.
        line: usize,
        /// The axis.
        axis: String,
    },
    /// An ODD value not among the values `suite.toml` allows for its axis.
    #[error(
        "{}:{line}: odd.{axis} = \"{value}\" is not one of {} ({SUITE_FILE}); use one of those \
         values, or add \"{value}\" to axes.{axis} in {}",
        file.display(), allowed.join(", "), suite_file.display()
    )]
    OddValue {
        /// The scenario file.
        file: PathBuf,
        /// Line of the value.
        line: usize,
        /// The axis.
        axis: String,
        /// The value found.
        value: String,
        /// The values suite.toml allows.
        allowed: Vec<String>,
        /// The suite.toml file.
        suite_file: PathBuf,
    },
    /// An ODD key that is not an axis of the suite.
    #[error(
        "{}:{line}: odd.{axis} is not an axis of this suite ({SUITE_FILE} declares {}); remove it, \
         fix its spelling, or declare it under [axes] in {SUITE_FILE}",
        file.display(), axes.join(", ")
    )]
    UnknownAxis {
        /// The scenario file.
        file: PathBuf,
        /// Line of the key.
        line: usize,
        /// The key found.
        axis: String,
        /// The suite's axes.
        axes: Vec<String>,
    },
    /// An axis of the suite that the scenario's `[odd]` table does not give.
    #[error(
        "{}:{line}: odd.{axis} is missing; every scenario gives one value per axis of \
         {SUITE_FILE}: add {axis} = \"...\" (one of {}) to the [odd] table",
        file.display(), allowed.join(", ")
    )]
    MissingAxis {
        /// The scenario file.
        file: PathBuf,
        /// Line of the `[odd]` table (1 when there is none).
        line: usize,
        /// The missing axis.
        axis: String,
        /// The values suite.toml allows for it.
        allowed: Vec<String>,
    },
    /// An image, mask folder or related image that does not exist.
    #[error(
        "{}:{line}: {field} = \"{given}\": no such {kind} ({}); paths are relative to the suite \
         folder (or absolute): fix the path or add the {kind}",
        file.display(), resolved.display()
    )]
    MissingPath {
        /// The scenario file.
        file: PathBuf,
        /// Line of the field.
        line: usize,
        /// The field (`image`, `masks`, `related_images[1]`).
        field: String,
        /// The path as written.
        given: String,
        /// The path looked for.
        resolved: PathBuf,
        /// `file` or `folder`.
        kind: &'static str,
    },
    /// The instruction is empty or has no words.
    #[error(
        "{}:{line}: instruction is empty; write the editing instruction to explain, \
         e.g. instruction = \"make the car red\"",
        file.display()
    )]
    EmptyInstruction {
        /// The scenario file.
        file: PathBuf,
        /// Line of the field.
        line: usize,
    },
    /// A field that must not be empty is (`id`, `key_words`, a paraphrase).
    #[error("{}:{line}: {field} is empty; {fix}", file.display())]
    EmptyField {
        /// The scenario file.
        file: PathBuf,
        /// Line of the field.
        line: usize,
        /// The field.
        field: String,
        /// What to write instead.
        fix: &'static str,
    },
    /// An id with characters that cannot name a folder.
    #[error(
        "{}:{line}: id = \"{id}\" has characters other than letters, digits, '-', '_' and '.'; \
         ids name output folders: use e.g. \"odd-world-001\"",
        file.display()
    )]
    InvalidId {
        /// The scenario file.
        file: PathBuf,
        /// Line of the id.
        line: usize,
        /// The id found.
        id: String,
    },
    /// A key word that is not a word of the instruction.
    #[error(
        "{}:{line}: key_words: \"{word}\" is not a word of the instruction \"{instruction}\" as \
         gsmile splits it into words (Unicode word boundaries: \"car-red\" is the two words \
         \"car\" and \"red\"; case is ignored): fix the key word or the instruction",
        file.display()
    )]
    KeyWordNotInInstruction {
        /// The scenario file.
        file: PathBuf,
        /// Line of the key word.
        line: usize,
        /// The key word.
        word: String,
        /// The instruction.
        instruction: String,
    },
    /// A paraphrase that lacks one of the key words.
    #[error(
        "{}:{line}: paraphrases[{index}] = \"{paraphrase}\" lacks the key word \"{word}\"; a \
         paraphrase is the same edit phrased otherwise and keeps every key word: add it or \
         drop the paraphrase",
        file.display()
    )]
    KeyWordNotInParaphrase {
        /// The scenario file.
        file: PathBuf,
        /// Line of the paraphrase.
        line: usize,
        /// Index of the paraphrase.
        index: usize,
        /// The paraphrase.
        paraphrase: String,
        /// The missing key word.
        word: String,
    },
    /// Two scenario files with the same id.
    #[error(
        "{}:{line}: id = \"{id}\" is already used by {}; ids must be unique within a suite: \
         rename one",
        file.display(), first.display()
    )]
    DuplicateId {
        /// The later file.
        file: PathBuf,
        /// Line of its id.
        line: usize,
        /// The id.
        id: String,
        /// The file that used it first.
        first: PathBuf,
    },
    /// A shard specification that cannot select anything.
    #[error("invalid shard \"{spec}\": {reason}; write INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4")]
    InvalidShard {
        /// The specification as given (`index/count` for [`shard`]).
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Hint for a missing field of `suite.toml`.
const SUITE_FIELDS: &str =
    "add it (suite.toml needs name; description and an [axes] table of value lists are optional)";
/// Hint for a missing field of a scenario file.
const SCENARIO_FIELDS: &str = "add it (a scenario needs id, image, instruction, key_words and an \
     [odd] table; masks, paraphrases and related_images are optional)";

/// `suite.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    axes: BTreeMap<String, Spanned<Vec<String>>>,
}

/// A scenario file as written; spans locate the lines of later checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    id: Spanned<String>,
    image: Spanned<String>,
    #[serde(default)]
    masks: Option<Spanned<String>>,
    instruction: Spanned<String>,
    #[serde(default)]
    paraphrases: Vec<Spanned<String>>,
    key_words: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    related_images: Vec<Spanned<String>>,
    #[serde(default)]
    odd: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

/// Loads a suite folder: `suite.toml`, then every other `*.toml` in file-name order.
///
/// Fails on the first problem, naming its file and line; ids must be unique.
pub fn load_suite(dir: &Path) -> Result<Suite, ScenarioError> {
    let suite_file = dir.join(SUITE_FILE);
    if !suite_file.is_file() {
        return Err(ScenarioError::NoSuiteFile { dir: dir.to_path_buf() });
    }
    let text = read(&suite_file)?;
    let raw: RawSuite = parse_toml(&text, &suite_file, SUITE_FIELDS)?;
    let mut axes = BTreeMap::new();
    for (axis, values) in raw.axes {
        if values.get_ref().is_empty() {
            return Err(ScenarioError::EmptyAxis {
                file: suite_file,
                line: line_col(&text, values.span().start).0,
                axis,
            });
        }
        axes.insert(axis, values.into_inner());
    }

    let entries = std::fs::read_dir(dir).map_err(|source| ScenarioError::Io { path: dir.to_path_buf(), source })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ScenarioError::Io { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        if is_toml && path.is_file() && entry.file_name() != SUITE_FILE {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if files.is_empty() {
        return Err(ScenarioError::NoScenarios { dir: dir.to_path_buf() });
    }

    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut scenarios = Vec::with_capacity(files.len());
    for file in files {
        let scenario = load_scenario(&file, dir, &axes)?;
        if let Some(first) = seen.get(&scenario.id) {
            let text = read(&file)?;
            return Err(ScenarioError::DuplicateId {
                line: key_line(&text, "id").unwrap_or(1),
                file,
                id: scenario.id,
                first: first.clone(),
            });
        }
        seen.insert(scenario.id.clone(), file);
        scenarios.push(scenario);
    }
    Ok(Suite { name: raw.name, description: raw.description, dir: dir.to_path_buf(), axes, scenarios })
}

/// Loads and checks one scenario file against the suite folder and its ODD axes.
///
/// Relative paths are resolved against `suite_dir`; the image, mask folder and related images
/// must exist; key words must be words of the instruction and of every paraphrase; `[odd]`
/// must give exactly one allowed value per axis (an empty `axes` allows no `[odd]` keys).
pub fn load_scenario(
    path: &Path,
    suite_dir: &Path,
    axes: &BTreeMap<String, Vec<String>>,
) -> Result<Scenario, ScenarioError> {
    let text = read(path)?;
    let raw: RawScenario = parse_toml(&text, path, SCENARIO_FIELDS)?;
    let file = path.to_path_buf();
    let line = |span: Range<usize>| line_col(&text, span.start).0;

    let id = raw.id.get_ref().trim().to_string();
    if id.is_empty() {
        return Err(ScenarioError::EmptyField {
            file,
            line: line(raw.id.span()),
            field: "id".into(),
            fix: "give the scenario a unique id, e.g. id = \"odd-world-001\"",
        });
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(ScenarioError::InvalidId { file, line: line(raw.id.span()), id });
    }

    let instruction = raw.instruction.get_ref().trim().to_string();
    let instruction_words = words(&instruction);
    if instruction_words.is_empty() {
        return Err(ScenarioError::EmptyInstruction { file, line: line(raw.instruction.span()) });
    }

    let key_span = raw.key_words.span();
    let raw_keys = raw.key_words.into_inner();
    if raw_keys.is_empty() {
        return Err(ScenarioError::EmptyField {
            file,
            line: line(key_span),
            field: "key_words".into(),
            fix: "list the words of the instruction that carry the edit, e.g. key_words = [\"car\", \"red\"]",
        });
    }
    let mut key_words = Vec::with_capacity(raw_keys.len());
    for k in &raw_keys {
        let word = k.get_ref().clone();
        if !instruction_words.contains(&normalise(&word)) {
            return Err(ScenarioError::KeyWordNotInInstruction { file, line: line(k.span()), word, instruction });
        }
        key_words.push(word);
    }

    let mut paraphrases = Vec::with_capacity(raw.paraphrases.len());
    for (index, p) in raw.paraphrases.iter().enumerate() {
        let paraphrase = p.get_ref().trim().to_string();
        let pw = words(&paraphrase);
        if pw.is_empty() {
            return Err(ScenarioError::EmptyField {
                file,
                line: line(p.span()),
                field: format!("paraphrases[{index}]"),
                fix: "write the same edit phrased otherwise, or remove the empty string",
            });
        }
        if let Some(word) = key_words.iter().find(|k| !pw.contains(&normalise(k))) {
            return Err(ScenarioError::KeyWordNotInParaphrase {
                file,
                line: line(p.span()),
                index,
                paraphrase,
                word: word.clone(),
            });
        }
        paraphrases.push(paraphrase);
    }

    let image = existing(&file, &text, suite_dir, "image", &raw.image, false)?;
    let masks = match &raw.masks {
        Some(m) => Some(existing(&file, &text, suite_dir, "masks", m, true)?),
        None => None,
    };
    let mut related_images = Vec::with_capacity(raw.related_images.len());
    for (i, r) in raw.related_images.iter().enumerate() {
        related_images.push(existing(&file, &text, suite_dir, &format!("related_images[{i}]"), r, false)?);
    }

    let (odd_line, raw_odd) = match raw.odd {
        Some(t) => (line(t.span()), t.into_inner()),
        None => (key_line(&text, "odd").unwrap_or(1), BTreeMap::new()),
    };
    let mut odd = BTreeMap::new();
    for (axis, value) in raw_odd {
        let (axis_span, axis) = (axis.span(), axis.into_inner());
        let Some(allowed) = axes.get(&axis) else {
            return Err(ScenarioError::UnknownAxis {
                file,
                line: line(axis_span),
                axis,
                axes: axes.keys().cloned().collect(),
            });
        };
        if !allowed.contains(value.get_ref()) {
            return Err(ScenarioError::OddValue {
                file,
                line: line(value.span()),
                axis,
                value: value.into_inner(),
                allowed: allowed.clone(),
                suite_file: suite_dir.join(SUITE_FILE),
            });
        }
        odd.insert(axis, value.into_inner());
    }
    if let Some((axis, allowed)) = axes.iter().find(|(a, _)| !odd.contains_key(*a)) {
        return Err(ScenarioError::MissingAxis { file, line: odd_line, axis: axis.clone(), allowed: allowed.clone() });
    }

    Ok(Scenario { id, file, image, masks, instruction, paraphrases, key_words, related_images, odd })
}

/// Shard `index` of `count`: the scenarios sorted by id, keeping positions ≡ `index` (mod `count`).
///
/// Shards of one suite are disjoint, their union is the suite, their sizes differ by at most
/// one, and the split depends only on the ids (not on file order or the machine), so
/// `count` CI jobs running shards `0..count` cover every scenario exactly once.
pub fn shard(scenarios: &[Scenario], index: usize, count: usize) -> Result<Vec<&Scenario>, ScenarioError> {
    let spec = format!("{index}/{count}");
    if count == 0 {
        return Err(ScenarioError::InvalidShard { spec, reason: "COUNT must be at least 1".into() });
    }
    if index >= count {
        return Err(ScenarioError::InvalidShard {
            spec,
            reason: format!("INDEX is 0-based and must be below COUNT ({count})"),
        });
    }
    let mut sorted: Vec<&Scenario> = scenarios.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(sorted.into_iter().enumerate().filter(|(i, _)| i % count == index).map(|(_, s)| s).collect())
}

/// Parses a shard specification `"INDEX/COUNT"` (0-based: `0/4` … `3/4`) into `(index, count)`.
pub fn parse_shard(spec: &str) -> Result<(usize, usize), ScenarioError> {
    let invalid = |reason: String| ScenarioError::InvalidShard { spec: spec.to_string(), reason };
    let Some((i, n)) = spec.trim().split_once('/') else {
        return Err(invalid("there is no '/'".into()));
    };
    let index: usize =
        i.trim().parse().map_err(|_| invalid(format!("INDEX \"{}\" is not a whole number", i.trim())))?;
    let count: usize =
        n.trim().parse().map_err(|_| invalid(format!("COUNT \"{}\" is not a whole number", n.trim())))?;
    if count == 0 {
        return Err(invalid("COUNT must be at least 1".into()));
    }
    if index >= count {
        return Err(invalid(format!("INDEX is 0-based and must be below COUNT ({count})")));
    }
    Ok((index, count))
}

/// The words of a text as key words are compared: whitespace-split, lowercased, with
/// punctuation trimmed from both ends ("Please," → "please").
/// The words of `text` as the explainer splits them ([`crate::perturb::split_words`]),
/// lower-cased: key words are checked against the words explanations attribute.
fn words(text: &str) -> Vec<String> {
    crate::perturb::split_words(text).into_iter().map(|w| w.text.to_lowercase()).collect()
}

/// A key word as written, compared as the explainer's words are: outer punctuation trimmed
/// (`"red,"` is the word `red`), lower-cased; anything that is not one word stays as it is
/// and so matches no word.
fn normalise(word: &str) -> String {
    let inner = word.trim_matches(|c: char| !c.is_alphanumeric());
    match crate::perturb::split_words(inner).as_slice() {
        [one] if one.text == inner => inner.to_lowercase(),
        _ => word.to_lowercase(),
    }
}

fn read(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|source| ScenarioError::Io { path: path.to_path_buf(), source })
}

/// Deserialises TOML, turning `toml`'s error (byte span + message) into file:line:column.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, file: &Path, fields: &str) -> Result<T, ScenarioError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
        let message = e.message().trim().to_string();
        // serde names fields in backticks: "missing field `image`", "unknown field `colour`".
        let field = message.split('`').nth(1).map(str::to_string);
        let hint = if message.starts_with("missing field") {
            fields
        } else if message.starts_with("unknown field") {
            "remove this field or fix its spelling"
        } else if message.starts_with("invalid type") {
            "give the field a value of the expected type"
        } else {
            "fix the TOML at this position"
        };
        ScenarioError::Toml { file: file.to_path_buf(), line, column, field, message, hint: hint.into() }
    })
}

/// 1-based (line, column) of a byte offset; never panics on any offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let bytes = &text.as_bytes()[..offset.min(text.len())];
    let line = 1 + bytes.iter().filter(|&&b| b == b'\n').count();
    let line_start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = 1 + String::from_utf8_lossy(&bytes[line_start..]).chars().count();
    (line, column)
}

/// Line of the first top-level `key = ...` or `[key]` in a TOML text (for errors without a span).
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix(key).map(str::trim_start);
            rest.is_some_and(|r| r.starts_with('=') || r.starts_with('.'))
                || l.strip_prefix('[')
                    .is_some_and(|r| r.trim_start().strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(']')))
        })
        .map(|i| i + 1)
}

/// Resolves a path field against the suite folder and checks that it exists.
fn existing(
    file: &Path,
    text: &str,
    suite_dir: &Path,
    field: &str,
    value: &Spanned<String>,
    folder: bool,
) -> Result<PathBuf, ScenarioError> {
    let given = value.get_ref();
    let p = Path::new(given);
    let resolved = if p.is_absolute() { p.to_path_buf() } else { suite_dir.join(p) };
    let ok = !given.trim().is_empty() && if folder { resolved.is_dir() } else { resolved.is_file() };
    if ok {
        Ok(resolved)
    } else {
        Err(ScenarioError::MissingPath {
            file: file.to_path_buf(),
            line: line_col(text, value.span().start).0,
            field: field.to_string(),
            given: given.clone(),
            resolved,
            kind: if folder { "folder" } else { "file" },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = "name = \"t\"\ndescription = \"test suite\"\n[axes]\nweather = [\"clear\", \"fog\", \"snow\"]\nstyle = [\"terse\", \"polite\"]\n";

    fn good(id: &str) -> String {
        format!(
            "id = \"{id}\"\nimage = \"img.png\"\nmasks = \"masks\"\ninstruction = \"Please, make the car red.\"\n\
             paraphrases = [\"paint the car red\", \"could you turn the car red?\"]\n\
             key_words = [\"car\", \"red\"]\nrelated_images = [\"img.png\"]\n\n[odd]\nweather = \"clear\"\nstyle = \"polite\"\n"
        )
    }

    /// A suite folder with suite.toml, an image, a masks folder and the given scenario files.
    fn suite(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SUITE_FILE), SUITE).unwrap();
        std::fs::write(dir.path().join("img.png"), b"not decoded here").unwrap();
        std::fs::create_dir(dir.path().join("masks")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn axes() -> BTreeMap<String, Vec<String>> {
        let raw: RawSuite = toml::from_str(SUITE).unwrap();
        raw.axes.into_iter().map(|(k, v)| (k, v.into_inner())).collect()
    }

    /// Loads one scenario text; returns the error's message.
    fn err(text: &str) -> (ScenarioError, String) {
        let dir = suite(&[("001-x.toml", text)]);
        let e = load_scenario(&dir.path().join("001-x.toml"), dir.path(), &axes()).unwrap_err();
        let msg = e.to_string();
        (e, msg)
    }

    #[test]
    fn good_scenario_loads_and_resolves_paths() {
        let dir = suite(&[("001-x.toml", &good("a-1"))]);
        let s = load_scenario(&dir.path().join("001-x.toml"), dir.path(), &axes()).unwrap();
        assert_eq!(s.id, "a-1");
        assert_eq!(s.image, dir.path().join("img.png"));
        assert_eq!(s.masks.as_deref(), Some(dir.path().join("masks").as_path()));
        assert_eq!(s.key_words, ["car", "red"]);
        assert_eq!(s.paraphrases.len(), 2);
        assert_eq!(s.related_images, [dir.path().join("img.png")]);
        assert_eq!(s.odd["weather"], "clear");
    }

    #[test]
    fn absolute_image_path_is_kept() {
        let dir = suite(&[]);
        let abs = dir.path().join("img.png");
        let text = good("a")
            .replace("image = \"img.png\"", &format!("image = {:?}", abs.display().to_string()))
            .replace("masks = \"masks\"\n", "")
            .replace("related_images = [\"img.png\"]\n", "");
        std::fs::write(dir.path().join("001-x.toml"), text).unwrap();
        let s = load_scenario(&dir.path().join("001-x.toml"), Path::new("/nonexistent"), &axes()).unwrap();
        assert_eq!(s.image, abs);
    }

    #[test]
    fn toml_syntax_error_has_line_and_column() {
        let (e, msg) = err(&good("a").replace("instruction = \"Please", "instruction = Please"));
        assert!(matches!(e, ScenarioError::Toml { line: 4, .. }), "{msg}");
        assert!(msg.contains("001-x.toml:4:"), "{msg}");
    }

    #[test]
    fn missing_field_is_named() {
        let (e, msg) = err(&good("a").replace("image = \"img.png\"\n", ""));
        assert!(matches!(&e, ScenarioError::Toml { field: Some(f), .. } if f == "image"), "{msg}");
        assert!(msg.contains("missing field") && msg.contains("add it (a scenario needs"), "{msg}");
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let (e, msg) = err(&good("a").replace("masks = ", "colour = \"red\"\nmasks = "));
        assert!(matches!(&e, ScenarioError::Toml { field: Some(f), line: 3, .. } if f == "colour"), "{msg}");
        assert!(msg.contains("001-x.toml:3:") && msg.contains("remove this field"), "{msg}");
    }

    #[test]
    fn wrong_type_is_a_toml_error() {
        let (e, msg) = err(&good("a").replace("key_words = [\"car\", \"red\"]", "key_words = \"car\""));
        assert!(matches!(e, ScenarioError::Toml { line: 6, .. }), "{msg}");
    }

    #[test]
    fn odd_value_not_allowed_names_line_and_values() {
        let (e, msg) = err(&good("a").replace("weather = \"clear\"", "weather = \"rain\""));
        assert!(matches!(e, ScenarioError::OddValue { line: 10, .. }), "{msg}");
        assert!(
            msg.contains("001-x.toml:10: odd.weather = \"rain\" is not one of clear, fog, snow (suite.toml)"),
            "{msg}"
        );
    }

    #[test]
    fn odd_inline_table_value_is_located() {
        let text = good("a").replace(
            "[odd]\nweather = \"clear\"\nstyle = \"polite\"\n",
            "odd = { style = \"polite\", weather = \"hail\" }\n",
        );
        let (e, msg) = err(&text);
        assert!(matches!(e, ScenarioError::OddValue { line: 9, .. }), "{msg}");
    }

    #[test]
    fn unknown_axis_is_reported() {
        let (e, msg) = err(&format!("{}season = \"summer\"\n", good("a")));
        assert!(matches!(e, ScenarioError::UnknownAxis { line: 12, .. }), "{msg}");
        assert!(msg.contains("odd.season is not an axis"), "{msg}");
    }

    #[test]
    fn missing_axis_is_reported() {
        let (e, msg) = err(&good("a").replace("style = \"polite\"\n", ""));
        assert!(matches!(e, ScenarioError::MissingAxis { line: 9, .. }), "{msg}");
        assert!(msg.contains("odd.style is missing") && msg.contains("terse, polite"), "{msg}");
        let (e, msg) = err(&good("a").replace("[odd]\nweather = \"clear\"\nstyle = \"polite\"\n", ""));
        assert!(matches!(e, ScenarioError::MissingAxis { .. }), "{msg}");
    }

    #[test]
    fn missing_image_is_reported() {
        let (e, msg) = err(&good("a").replace("image = \"img.png\"", "image = \"nope.png\""));
        assert!(matches!(&e, ScenarioError::MissingPath { line: 2, field, .. } if field == "image"), "{msg}");
        assert!(msg.contains("001-x.toml:2: image = \"nope.png\": no such file"), "{msg}");
    }

    #[test]
    fn missing_masks_and_related_images_are_reported() {
        let (e, msg) = err(&good("a").replace("masks = \"masks\"", "masks = \"img.png\""));
        assert!(matches!(&e, ScenarioError::MissingPath { line: 3, kind: "folder", .. }), "{msg}");
        let (e, msg) =
            err(&good("a").replace("related_images = [\"img.png\"]", "related_images = [\"img.png\",\n  \"b.png\"]"));
        assert!(
            matches!(&e, ScenarioError::MissingPath { line: 8, field, .. } if field == "related_images[1]"),
            "{msg}"
        );
    }

    #[test]
    fn key_word_not_in_instruction_is_reported() {
        let (e, msg) = err(&good("a").replace("key_words = [\"car\", \"red\"]", "key_words = [\"car\", \"blue\"]"));
        assert!(matches!(&e, ScenarioError::KeyWordNotInInstruction { line: 6, word, .. } if word == "blue"), "{msg}");
        assert!(msg.contains("\"blue\" is not a word of the instruction"), "{msg}");
    }

    #[test]
    fn key_words_ignore_case_and_punctuation() {
        let text = good("a").replace("Please, make the car red.", "Make the CAR red!");
        let dir = suite(&[("001-x.toml", &text)]);
        assert!(load_scenario(&dir.path().join("001-x.toml"), dir.path(), &axes()).is_ok());
    }

    #[test]
    fn key_words_are_words_as_the_explainer_splits_them() {
        // "car-red" is two words to the explainer, so as a key word it would match nothing.
        let text = good("a")
            .replace("Please, make the car red.", "make the car-red")
            .replace("key_words = [\"car\", \"red\"]", "key_words = [\"car-red\"]");
        let (e, msg) = err(&text);
        assert!(matches!(&e, ScenarioError::KeyWordNotInInstruction { word, .. } if word == "car-red"), "{msg}");
        assert!(msg.contains("two words"), "{msg}");
        let text = good("a").replace("Please, make the car red.", "make the car-red");
        let dir = suite(&[("001-x.toml", &text)]);
        assert!(load_scenario(&dir.path().join("001-x.toml"), dir.path(), &axes()).is_ok());
    }

    #[test]
    fn paraphrase_without_key_word_is_reported() {
        let (e, msg) = err(&good("a").replace("\"paint the car red\"", "\"paint the sky red\""));
        assert!(
            matches!(&e, ScenarioError::KeyWordNotInParaphrase { line: 5, index: 0, word, .. } if word == "car"),
            "{msg}"
        );
    }

    #[test]
    fn empty_fields_are_reported() {
        let (e, msg) = err(&good("a").replace("Please, make the car red.", " ? "));
        assert!(matches!(e, ScenarioError::EmptyInstruction { line: 4, .. }), "{msg}");
        let (e, msg) = err(&good("a").replace("key_words = [\"car\", \"red\"]", "key_words = []"));
        assert!(matches!(&e, ScenarioError::EmptyField { line: 6, field, .. } if field == "key_words"), "{msg}");
        let (e, msg) = err(&good(""));
        assert!(matches!(&e, ScenarioError::EmptyField { line: 1, field, .. } if field == "id"), "{msg}");
        let (e, msg) = err(&good("a").replace("\"paint the car red\"", "\"\""));
        assert!(matches!(&e, ScenarioError::EmptyField { line: 5, .. }), "{msg}");
    }

    #[test]
    fn id_with_slash_is_rejected() {
        let (e, msg) = err(&good("a/b"));
        assert!(matches!(e, ScenarioError::InvalidId { line: 1, .. }), "{msg}");
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "\u{0}\u{1}",
            "[[[",
            "id = 1",
            "odd = 3",
            "odd = { weather = 1 }",
            "key_words = [1]",
            "é = \"ü\"\n[odd\n",
        ] {
            let (_, msg) = err(text);
            assert!(msg.contains("001-x.toml:"), "{msg}");
        }
        let dir = suite(&[]);
        std::fs::write(dir.path().join("001-x.toml"), [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(
            load_scenario(&dir.path().join("001-x.toml"), dir.path(), &axes()),
            Err(ScenarioError::Io { .. })
        ));
    }

    #[test]
    fn suite_loads_in_file_name_order() {
        let dir = suite(&[("002-b.toml", &good("b")), ("001-a.toml", &good("z")), ("notes.txt", "x")]);
        let s = load_suite(dir.path()).unwrap();
        assert_eq!(s.name, "t");
        assert_eq!(s.axes["weather"], ["clear", "fog", "snow"]);
        let ids: Vec<_> = s.scenarios.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["z", "b"]);
    }

    #[test]
    fn duplicate_ids_are_reported() {
        let dir = suite(&[("001-a.toml", &good("same")), ("002-b.toml", &good("same"))]);
        let e = load_suite(dir.path()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ScenarioError::DuplicateId { line: 1, .. }), "{msg}");
        assert!(msg.contains("002-b.toml:1:") && msg.contains("001-a.toml"), "{msg}");
    }

    #[test]
    fn suite_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load_suite(dir.path()), Err(ScenarioError::NoSuiteFile { .. })));
        std::fs::write(dir.path().join(SUITE_FILE), SUITE).unwrap();
        assert!(matches!(load_suite(dir.path()), Err(ScenarioError::NoScenarios { .. })));
        std::fs::write(dir.path().join(SUITE_FILE), format!("{SUITE}empty = []\n")).unwrap();
        let e = load_suite(dir.path()).unwrap_err();
        assert!(matches!(e, ScenarioError::EmptyAxis { line: 6, .. }), "{e}");
        std::fs::write(dir.path().join(SUITE_FILE), "title = \"x\"\n").unwrap();
        let e = load_suite(dir.path()).unwrap_err();
        assert!(e.to_string().contains("suite.toml:1:"), "{e}");
    }

    fn scenarios(n: usize) -> Vec<Scenario> {
        // ids in an order unlike their sort order, to show sharding sorts
        (0..n)
            .map(|i| Scenario {
                id: format!("s-{:03}", (i * 7) % n),
                file: PathBuf::new(),
                image: PathBuf::new(),
                masks: None,
                instruction: "make the car red".into(),
                paraphrases: vec![],
                key_words: vec!["car".into()],
                related_images: vec![],
                odd: BTreeMap::new(),
            })
            .collect()
    }

    #[test]
    fn shards_partition_the_suite() {
        let all = scenarios(23);
        for count in 1..=6 {
            let mut ids: Vec<&str> = Vec::new();
            for index in 0..count {
                let part = shard(&all, index, count).unwrap();
                assert!(part.len() == 23 / count || part.len() == 23 / count + 1);
                assert!(part.windows(2).all(|w| w[0].id < w[1].id));
                ids.extend(part.iter().map(|s| s.id.as_str()));
            }
            ids.sort();
            let mut expected: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
            expected.sort();
            assert_eq!(ids, expected, "count {count}: union = all, each once (disjoint)");
        }
    }

    #[test]
    fn shards_are_deterministic_and_independent_of_order() {
        let all = scenarios(10);
        let mut reversed = all.clone();
        reversed.reverse();
        let a: Vec<_> = shard(&all, 1, 3).unwrap().iter().map(|s| s.id.clone()).collect();
        let b: Vec<_> = shard(&reversed, 1, 3).unwrap().iter().map(|s| s.id.clone()).collect();
        assert_eq!(a, b);
        assert_eq!(a, ["s-001", "s-004", "s-007"]);
        assert!(shard(&[], 0, 2).unwrap().is_empty());
    }

    #[test]
    fn shard_rejects_bad_index_and_count() {
        let all = scenarios(3);
        assert!(matches!(shard(&all, 0, 0), Err(ScenarioError::InvalidShard { .. })));
        let e = shard(&all, 3, 3).unwrap_err().to_string();
        assert!(e.contains("\"3/3\"") && e.contains("0-based"), "{e}");
    }

    #[test]
    fn parse_shard_accepts_and_rejects() {
        assert_eq!(parse_shard("0/4").unwrap(), (0, 4));
        assert_eq!(parse_shard(" 3 / 4 ").unwrap(), (3, 4));
        for (bad, why) in [
            ("4", "no '/'"),
            ("a/4", "INDEX \"a\""),
            ("1/x", "COUNT \"x\""),
            ("0/0", "at least 1"),
            ("4/4", "below COUNT"),
            ("-1/4", "INDEX"),
            ("", "no '/'"),
        ] {
            let e = parse_shard(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("INDEX/COUNT"), "{bad}: {e}");
        }
    }
}
