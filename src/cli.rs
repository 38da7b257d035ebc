//! Subcommands: each one wires the parts together in a few lines.

use crate::cluster::{ClusterView, Stores, files, live};
use crate::metrics::Metrics;
use crate::policy::{Context, Phase, References, Settings};
use crate::schema::SchemaCache;
use crate::server::{self, App, authorize};
use crate::{check, crd, judge, logs, reconcile, tls, webhook_config};
use anyhow::{Context as _, bail};
use base64::Engine;
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Admission webhook and reconcile loop that keep Kratix and OpenChoreo bindings honest.
#[derive(Parser, Debug)]
#[command(name = "bindguard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTPS admission webhook (and the admin endpoints).
    Serve(ServeArgs),
    /// Judge one AdmissionReview offline and print the response review.
    Review(ReviewArgs),
    /// Write a CA and a serving certificate for the webhook Service.
    Certs(CertsArgs),
    /// Print the Validating- and MutatingWebhookConfiguration with the caBundle filled in.
    WebhookConfig(WebhookConfigArgs),
    /// Print the CustomResourceDefinitions.
    Crds,
    /// Run the reconcile loop alone (leader-elected), with an admin /healthz and /metrics.
    Reconcile(ReconcileArgs),
    /// Pin an environment's ResourceReleaseBinding to the Resource's latest release.
    Promote(PromoteArgs),
    /// Judge the manifests under PATHs (or what they change since --base) as the webhook would.
    /// Exit 0: nothing refused; 1: something refused; 2: usage or parse error.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Judge what changed since this git revision (read through git, the work tree untouched);
    /// without it every object is a CREATE.
    #[arg(long, value_name = "GIT_REF")]
    pub base: Option<String>,
    /// Also judge against the live cluster (kubeconfig), the head's objects over it.
    #[arg(long)]
    pub cluster: bool,
    /// What a reference to an object that does not exist yet means.
    #[arg(long, env = "BINDGUARD_REFERENCES", value_enum, default_value_t = References::Warn)]
    pub references: References,
    /// Report format: `path:line:` lines, JSON, or GitHub workflow annotations.
    #[arg(long, value_enum, default_value_t = check::report::Output::Text)]
    pub output: check::report::Output,
    /// Files and folders of manifests (YAML or JSON, multi-document, `List`s, recursive).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReconcileArgs {
    /// Address of the plain-HTTP admin listener (/healthz, /metrics).
    #[arg(long, env = "BINDGUARD_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "BINDGUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// The Resource whose latest release is pinned.
    pub resource: String,
    /// The Environment whose binding is pinned.
    #[arg(long)]
    pub env: String,
    /// The namespace of the Resource and its bindings.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// What a reference to an object that does not exist yet means.
    #[arg(long, env = "BINDGUARD_REFERENCES", value_enum, default_value_t = References::Warn)]
    pub references: References,
    /// An identity allowed to delete the latest PromiseRevision (repeatable; a trailing `*`
    /// matches every user it prefixes). Default: bindguard's loop and Kratix's controllers.
    #[arg(
        long = "controller-user",
        env = "BINDGUARD_CONTROLLER_USERS",
        value_delimiter = ',',
        default_value = "system:serviceaccount:bindguard-system:bindguard,system:serviceaccount:kratix-platform-system:*"
    )]
    pub controller_users: Vec<String>,
}

impl PolicyArgs {
    fn settings(&self) -> Settings {
        Settings {
            references: self.references,
            controller_users: self.controller_users.clone(),
            authorize_projects: false,
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the HTTPS webhook listener.
    #[arg(long, env = "BINDGUARD_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Address of the plain-HTTP admin listener (/healthz, /readyz, /metrics).
    #[arg(long, env = "BINDGUARD_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// PEM certificate chain; without it a self-signed certificate is made for local use.
    #[arg(long, env = "BINDGUARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "BINDGUARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve from the manifests under DIR instead of a live cluster.
    #[arg(long, env = "BINDGUARD_STATE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Log format.
    #[arg(long, env = "BINDGUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Do not run the reconcile loop inside serve (run `bindguard reconcile` elsewhere).
    #[arg(long, env = "BINDGUARD_NO_RECONCILE")]
    pub no_reconcile: bool,
    /// Refuse ResourceReleaseBinding writes (403) unless the requester may create, update or
    /// delete `projects/releasebindings` named after the binding's project (SubjectAccessReview).
    #[arg(long, env = "BINDGUARD_AUTHORIZE_PROJECTS", conflicts_with = "state")]
    pub authorize_projects: bool,
    /// Reviews judged at once; one more is refused at once (429) instead of waiting.
    #[arg(long, env = "BINDGUARD_MAX_CONCURRENT_REVIEWS", default_value_t = server::DEFAULT_MAX_REVIEWS, value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub max_concurrent_reviews: usize,
    /// MiB of review bodies held at once, being read or judged, and as many MiB of decoded
    /// reviews (a larger one is judged alone); a body waits for room before it is read and
    /// before it is decoded, and is refused (HTTP 429) if none frees up in time. At least 8 (one
    /// body of the largest size accepted).
    #[arg(long, env = "BINDGUARD_MAX_REVIEW_MIB", default_value_t = server::DEFAULT_MAX_REVIEW_MIB, value_parser = clap::value_parser!(u32).range(8..=4096))]
    pub max_review_mib: u32,
    /// After SIGTERM, keep serving (with /readyz at 503) this long so endpoints drop the pod.
    #[arg(long, env = "BINDGUARD_DRAIN_DELAY", default_value = "5s", value_parser = server::parse_duration)]
    pub drain_delay: Duration,
    /// After the drain delay, let requests in progress finish for at most this long.
    #[arg(long, env = "BINDGUARD_SHUTDOWN_GRACE", default_value = "15s", value_parser = server::parse_duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// The AdmissionReview to judge; `-` (the default) reads standard input.
    #[arg(default_value = "-")]
    pub file: String,
    /// The cluster state to judge against.
    #[arg(long, env = "BINDGUARD_STATE")]
    pub state: PathBuf,
    /// Ask the mutating webhook instead of the validating one.
    #[arg(long)]
    pub mutate: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Directory to write ca.crt, tls.crt and tls.key into.
    #[arg(long)]
    pub out: PathBuf,
    /// A DNS name (or IP address) the certificate is for (repeatable).
    #[arg(long = "dns", required = true)]
    pub dns: Vec<String>,
}

#[derive(Args, Debug)]
pub struct WebhookConfigArgs {
    /// PEM CA that signed the webhook's serving certificate.
    #[arg(long)]
    pub ca_file: PathBuf,
    /// The webhook Service as NAMESPACE/NAME.
    #[arg(long, conflicts_with = "url", required_unless_present = "url")]
    pub service: Option<String>,
    /// A base URL (https://host:port); /validate and /mutate are appended.
    #[arg(long)]
    pub url: Option<String>,
}

/// Standard output was closed by its reader (`bindguard review ... | head`): not an error.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed")]
pub struct StdoutClosed;

/// Writes to standard output; a closed pipe ends the command quietly ([`StdoutClosed`]).
fn emit(text: std::fmt::Arguments) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Review(args) => review(args),
        Command::Certs(args) => certs(args),
        Command::WebhookConfig(args) => webhook_config(args),
        Command::Crds => crds(),
        Command::Reconcile(args) => reconcile(args),
        Command::Promote(args) => promote(args),
        Command::Check(args) => check(args),
    }
}

/// Prints the report; a refusal is [`check::Failure::Refused`], a check that could not run
/// [`check::Failure::Unable`].
fn check(args: CheckArgs) -> anyhow::Result<()> {
    let options = check::Options {
        base: args.base,
        cluster: args.cluster,
        references: args.references,
        output: args.output,
        paths: args.paths,
    };
    let outcome = check::check(&options).map_err(check::Failure::Unable)?;
    emit(format_args!("{}", outcome.report))?;
    if outcome.refused {
        return Err(check::Failure::Refused.into());
    }
    Ok(())
}

/// Logs at info (RUST_LOG overrides); rustls' own warnings about clients, such as an IP
/// address sent as SNI, are noise for a webhook, and kube-client's quote whole responses
/// (object values) that fail to decode: both only from error up. Panics are logged too.
/// Lines go to stderr through [`logs::Queue`]; dropping the returned guard writes out what is
/// queued.
fn init_logs(format: LogFormat, metrics: &Metrics) -> anyhow::Result<LogsWritten> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,rustls=error,kube_client=error")
    });
    let (queue, writer) = logs::Queue::start(std::io::stderr(), logs::QUEUE_BYTES)
        .context("starting the log writer")?;
    let counted = queue.clone();
    metrics.count_dropped_log_lines(move || counted.dropped());
    std::panic::set_hook(Box::new(|panic| tracing::error!(%panic, "panicked")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(queue);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(LogsWritten(Some(writer)))
}

/// Writes out the queued log lines when dropped; a panic after that is printed by Rust's own
/// hook, since the queue takes no more lines.
struct LogsWritten(Option<logs::Writer>);

impl Drop for LogsWritten {
    fn drop(&mut self) {
        drop(self.0.take());
        drop(std::panic::take_hook());
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let _logs = init_logs(args.log_format, &metrics)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(crate::schema::JUDGE_THREAD_STACK)
        // Judging holds a review slot; the rest (certificate reads, DNS) is brief.
        .max_blocking_threads(args.max_concurrent_reviews + 16)
        .build()?
        .block_on(serve_async(args, metrics))
}

async fn serve_async(args: ServeArgs, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let (view, stores) = cluster_view(args.state.as_deref(), &metrics).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut reconciler = None;
    if !args.no_reconcile && args.state.is_none() {
        let client = kube::Client::try_default().await.context("connecting to the cluster for the reconcile loop; use --no-reconcile to serve without it")?;
        let run = reconcile::run(client, metrics.clone(), view.clone(), stopped.clone());
        reconciler = Some(tokio::spawn(run));
    }
    let serving = serving_key(&args)?;
    let expires = |m: &Metrics, key: &_| match tls::expiry(key) {
        Some(at) => m.certificate_expires(at),
        None => tracing::warn!("the serving certificate's expiry could not be read"),
    };
    expires(&metrics, &serving);
    let resolver = tls::Resolver::new(serving);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let m = metrics.clone();
        tokio::spawn(tls::watch(
            resolver.clone(),
            cert.clone(),
            key.clone(),
            Duration::from_secs(10),
            move |key| expires(&m, key),
        ));
    }
    let mut settings = args.policy.settings();
    settings.authorize_projects = args.authorize_projects;
    let mut app = App::new(view, stores, settings, metrics, args.max_concurrent_reviews)
        .with_body_budget(args.max_review_mib);
    if args.authorize_projects {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster for --authorize-projects")?;
        let asks = Arc::new(authorize::SubjectAccessReviews::new(client));
        app.authorizer = Some(Arc::new(authorize::Cached::new(asks, authorize::CACHE_TTL)));
    }
    let app = Arc::new(app);
    let webhook = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let admin = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding {}", args.admin_addr))?;
    tracing::info!(webhook = %webhook.local_addr()?, admin = %admin.local_addr()?, "serving");
    let (stop_webhook, webhook_stopped) = tokio::sync::watch::channel(false);
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
    let https = tokio::spawn(server::serve_tls(
        webhook,
        tls::server_config(resolver)?,
        server::webhook_router(app.clone()),
        webhook_stopped,
        args.shutdown_grace,
    ));
    let plain = tokio::spawn(server::serve_plain(
        admin,
        server::admin_router(app.clone()),
        admin_stopped,
        ADMIN_GRACE,
    ));
    server::termination().await;
    // The loop stops its controllers and releases the Lease at once, so another replica takes
    // over while this one drains.
    let _ = stop.send(true);
    server::drain(&app, args.drain_delay).await;
    let _ = stop_webhook.send(true);
    let _ = https.await;
    if let Some(reconciler) = reconciler {
        let _ = reconciler.await;
    }
    let _ = stop_admin.send(true);
    let _ = plain.await;
    tracing::info!("stopped");
    Ok(())
}

/// How long the admin listener waits for its last probe or scrape at exit.
const ADMIN_GRACE: Duration = Duration::from_secs(1);

/// The static view from `--state`, or the live one from the kubeconfig.
async fn cluster_view(
    state: Option<&Path>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(Arc<dyn ClusterView>, Option<Stores>)> {
    let stores = match state {
        Some(dir) => files::load_dir(dir)?,
        None => {
            let client = kube::Client::try_default().await.context("connecting to the cluster (kubeconfig or in-cluster); use --state DIR to serve without one")?;
            live::start(client, metrics.clone())
        }
    };
    Ok((Arc::new(stores.clone()), Some(stores)))
}

fn serving_key(args: &ServeArgs) -> anyhow::Result<Arc<rustls::sign::CertifiedKey>> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return tls::load(cert, key);
    }
    let bundle = tls::generate(&["localhost".into(), "127.0.0.1".into()])?;
    let dir = std::env::temp_dir().join("bindguard");
    tls::write_bundle(&dir, &bundle)?;
    tracing::warn!(ca = %dir.join("ca.crt").display(), "no --tls-cert/--tls-key: serving a self-signed certificate for localhost, for local use only");
    eprintln!("self-signed CA written to {}", dir.join("ca.crt").display());
    tls::load(&dir.join("tls.crt"), &dir.join("tls.key"))
}

fn review(args: ReviewArgs) -> anyhow::Result<()> {
    let stores = files::load_dir(&args.state)?;
    let body = if args.file == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        buf
    } else {
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file))?
    };
    let settings = args.policy.settings();
    let schemas = SchemaCache::new();
    let ctx = Context {
        view: &stores,
        settings: &settings,
        schemas: &schemas,
        in_place: None,
    };
    let phase = if args.mutate {
        Phase::Mutate
    } else {
        Phase::Validate
    };
    let judged =
        judge::judge(phase, &body, &ctx).map_err(|e| anyhow::anyhow!("{}: {e}", args.file))?;
    emit(format_args!(
        "{}\n",
        serde_json::to_string_pretty(&judged.response_json())?
    ))
}

fn certs(args: CertsArgs) -> anyhow::Result<()> {
    let bundle = tls::generate(&args.dns)?;
    tls::write_bundle(&args.out, &bundle)?;
    emit(format_args!(
        "wrote {0}/ca.crt, {0}/tls.crt and {0}/tls.key\n",
        args.out.display()
    ))
}

fn webhook_config(args: WebhookConfigArgs) -> anyhow::Result<()> {
    let ca = std::fs::read(&args.ca_file)
        .with_context(|| format!("reading {}", args.ca_file.display()))?;
    if !String::from_utf8_lossy(&ca).contains("BEGIN CERTIFICATE") {
        bail!("{}: not a PEM certificate", args.ca_file.display());
    }
    let target = match (args.service, args.url) {
        (Some(service), _) => webhook_config::Target::service(&service)?,
        (None, Some(url)) if url.starts_with("https://") => webhook_config::Target::Url(url),
        (None, Some(url)) => bail!("--url must start with https://, got {url:?}"),
        (None, None) => bail!("give --service NAMESPACE/NAME or --url URL"),
    };
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let configs = webhook_config::configurations(&target, Some(&ca_bundle));
    emit(format_args!(
        "{}",
        serde_saphyr::to_string_multiple(&configs)?
    ))
}

fn crds() -> anyhow::Result<()> {
    for crd in crd::all() {
        emit(format_args!("---\n{}", crd::to_yaml(&crd)?))?;
    }
    Ok(())
}

fn reconcile(args: ReconcileArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let _logs = init_logs(args.log_format, &metrics)?;
    // Deep objects (a Promise nested 10,000 levels) are copied, compared and dropped here too.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(crate::schema::JUDGE_THREAD_STACK)
        .build()?
        .block_on(async {
            let client = kube::Client::try_default()
                .await
                .context("connecting to the cluster (kubeconfig or in-cluster)")?;
            let admin = tokio::net::TcpListener::bind(args.admin_addr)
                .await
                .with_context(|| format!("binding {}", args.admin_addr))?;
            let shown = metrics.clone();
            let routes = axum::Router::new()
                .route("/healthz", axum::routing::get(|| async { "ok" }))
                .route(
                    "/metrics",
                    axum::routing::get(move || std::future::ready(shown.render(&[]))),
                );
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let plain = tokio::spawn(server::serve_plain(
                admin,
                routes,
                stopped.clone(),
                ADMIN_GRACE,
            ));
            let view = Arc::new(live::start(client.clone(), metrics.clone()));
            let reconciler = tokio::spawn(reconcile::run(client, metrics, view, stopped));
            server::termination().await;
            let _ = stop.send(true);
            let _ = tokio::join!(reconciler, plain);
            Ok(())
        })
}

fn promote(args: PromoteArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster (kubeconfig or in-cluster)")?;
        let (binding, release) =
            reconcile::promote::promote(client, &args.namespace, &args.resource, &args.env).await?;
        emit(format_args!(
            "ResourceReleaseBinding {binding} now pins ResourceRelease {release}\n"
        ))
    })
}
