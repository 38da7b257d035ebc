//! The PATHs as they are at a git revision, read through the `git` binary without touching the
//! work tree: `git ls-tree` lists the blobs, one `git cat-file --batch` reads them all.

use super::load::{Source, is_manifest_name};
use anyhow::{Context as _, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the repository is and where bindguard runs inside it.
pub struct Repo {
    /// The top of the work tree, canonical.
    top: PathBuf,
    /// The current directory relative to `top` (`""` at the top, else ending in `/`).
    prefix: String,
}

fn git(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running git (is it installed?)")
}

fn stdout_line(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .trim_end_matches('\n')
        .to_string()
}

impl Repo {
    /// The repository around the current directory; an error when there is none.
    pub fn here() -> anyhow::Result<Repo> {
        let top = git(&["rev-parse", "--show-toplevel"])?;
        if !top.status.success() {
            bail!(
                "--base needs a git repository, and {} is not in one",
                std::env::current_dir()?.display()
            );
        }
        let prefix = stdout_line(&git(&["rev-parse", "--show-prefix"])?);
        let top = PathBuf::from(stdout_line(&top)).canonicalize()?;
        Ok(Repo { top, prefix })
    }

    /// The commit `reference` names; an error naming it when it names none.
    pub fn commit(&self, reference: &str) -> anyhow::Result<String> {
        let spec = format!("{reference}^{{commit}}");
        let found = git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ])?;
        if !found.status.success() {
            bail!("--base {reference:?}: not a commit in this repository");
        }
        Ok(stdout_line(&found))
    }

    /// `path` (as given on the command line) relative to the top of the repository.
    fn in_repo(&self, path: &Path) -> anyhow::Result<String> {
        let absolute = path
            .canonicalize()
            .with_context(|| format!("{}: no such file or directory", path.display()))?;
        let relative = absolute.strip_prefix(&self.top).with_context(|| {
            format!(
                "{}: outside the git repository {}",
                path.display(),
                self.top.display()
            )
        })?;
        Ok(relative.to_string_lossy().into_owned())
    }

    /// A repository path as reports show it: relative to the current directory.
    fn display(&self, repo_path: &str) -> String {
        match repo_path.strip_prefix(&self.prefix) {
            Some(local) => local.to_string(),
            None => format!(":/{repo_path}"),
        }
    }

    /// The manifests under `paths` at `commit`.
    pub fn read(&self, commit: &str, paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
        let mut specs = Vec::new();
        let mut named = Vec::new();
        for path in paths {
            let in_repo = self.in_repo(path)?;
            if path.is_file() {
                named.push(in_repo.clone());
            }
            specs.push(in_repo);
        }
        let blobs = self.list(commit, &specs)?;
        let wanted: Vec<(String, String)> = blobs
            .into_iter()
            .filter(|(_, file)| is_manifest_name(file) || named.contains(file))
            .collect();
        let texts = cat_blobs(wanted.iter().map(|(blob, _)| blob.as_str()))?;
        Ok(wanted
            .into_iter()
            .zip(texts)
            .map(|((_, file), text)| Source {
                display: self.display(&file),
                text,
            })
            .collect())
    }

    /// `(blob, path)` of every file under `specs` at `commit`, paths from the top.
    fn list(&self, commit: &str, specs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
        let mut args = vec![
            "-C",
            self.top.to_str().unwrap_or("."),
            "ls-tree",
            "-r",
            "-z",
            "--full-tree",
            commit,
            "--",
        ];
        let top_level = [String::new()];
        let specs = if specs.iter().any(String::is_empty) {
            &top_level[..0]
        } else {
            specs
        };
        args.extend(specs.iter().map(String::as_str));
        let listed = git(&args)?;
        if !listed.status.success() {
            bail!(
                "git ls-tree {commit}: {}",
                String::from_utf8_lossy(&listed.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&listed.stdout);
        Ok(text
            .split('\0')
            .filter_map(|entry| {
                let (meta, path) = entry.split_once('\t')?;
                let mut fields = meta.split(' ');
                let (_mode, kind, blob) = (fields.next()?, fields.next()?, fields.next()?);
                (kind == "blob").then(|| (blob.to_string(), path.to_string()))
            })
            .collect())
    }
}

/// The contents of `blobs`, in order, through one `git cat-file --batch`.
fn cat_blobs<'a>(blobs: impl Iterator<Item = &'a str>) -> anyhow::Result<Vec<String>> {
    let mut child = Command::new("git")
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running git cat-file")?;
    let mut stdin = child.stdin.take().context("git cat-file stdin")?;
    let request: String = blobs.map(|b| format!("{b}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(request.as_bytes()));
    let mut out = BufReader::new(child.stdout.take().context("git cat-file stdout")?);
    let mut texts = Vec::new();
    let mut header = String::new();
    while {
        header.clear();
        out.read_line(&mut header)?
    } > 0
    {
        let size: usize = header
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("git cat-file: unexpected answer {header:?}"))?;
        let mut body = vec![0; size + 1];
        out.read_exact(&mut body)?;
        body.pop();
        texts.push(String::from_utf8_lossy(&body).into_owned());
    }
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("git cat-file writer panicked"))??;
    child.wait()?;
    Ok(texts)
}
