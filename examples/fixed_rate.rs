//! An open-loop HTTPS load generator for `scripts/bench.sh`: sends AdmissionReviews at a fixed
//! rate over keep-alive HTTP/1.1 connections and reports latency percentiles of the answered
//! ones. Each request has a scheduled send time; its latency is its own answer time plus the
//! time it would have waited behind earlier answers on its connection had every request left
//! exactly on time, so a server that falls behind is charged for the queue it builds (no
//! coordinated omission, unlike a closed-loop tool such as wrk), and the generator's own timer
//! lateness is not.
//!
//! Usage: fixed_rate HOST:PORT CA_PEM RATE SECONDS CONNECTIONS PATH=FILE...
//! Prints one line: `answered answered_per_second p50_ms p90_ms p99_ms max_ms errors`.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

struct Load {
    addr: String,
    tls: TlsConnector,
    requests: Vec<(String, Bytes)>,
    /// Time between two requests on one connection.
    interval: Duration,
    until: Instant,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, ca, rate, seconds, connections, mix @ ..] = args.as_slice() else {
        anyhow::bail!("usage: fixed_rate HOST:PORT CA_PEM RATE SECONDS CONNECTIONS PATH=FILE...");
    };
    let (rate, seconds, connections): (f64, f64, u32) =
        (rate.parse()?, seconds.parse()?, connections.parse()?);
    anyhow::ensure!(rate > 0.0 && seconds > 0.0 && connections > 0 && !mix.is_empty());
    let requests = mix
        .iter()
        .map(|arg| {
            let (path, file) = arg
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("{arg}"))?;
            Ok((path.to_owned(), Bytes::from(std::fs::read(file)?)))
        })
        .collect::<anyhow::Result<_>>()?;
    let start = Instant::now() + Duration::from_millis(200);
    let load = Arc::new(Load {
        addr: addr.clone(),
        tls: connector(ca)?,
        requests,
        interval: Duration::from_secs_f64(f64::from(connections) / rate),
        until: start + Duration::from_secs_f64(seconds),
    });
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let offset = load.interval.mul_f64(f64::from(i) / f64::from(connections));
            tokio::spawn(connection(load.clone(), start + offset, i as usize))
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0usize);
    for task in tasks {
        let (sample, failed) = task.await??;
        latencies.extend(sample);
        errors += failed;
    }
    report(&mut latencies, errors, seconds);
    Ok(())
}

fn connector(ca: &str) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One keep-alive connection sending its share of the schedule; latencies in milliseconds.
async fn connection(
    load: Arc<Load>,
    first: Instant,
    turn: usize,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let tcp = TcpStream::connect(&load.addr).await?;
    tcp.set_nodelay(true)?;
    let tls = load
        .tls
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let (mut latencies, mut errors, mut broken) = (Vec::new(), 0, false);
    // When the connection would be free again had every request been sent exactly when due: the
    // wait behind a slow answer counts, the generator's own lateness (tokio's 1 ms timer) not.
    let (mut due, mut free_at) = (first, first);
    for i in turn.. {
        if due >= load.until {
            break;
        }
        if broken {
            errors += 1;
            due += load.interval;
            continue;
        }
        tokio::time::sleep_until(due).await;
        let queued = free_at.saturating_duration_since(due);
        let (path, body) = &load.requests[i % load.requests.len()];
        let request = hyper::Request::post(path.as_str())
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?;
        let sent = Instant::now();
        let answered = match sender.ready().await {
            Ok(()) => match sender.send_request(request).await {
                Ok(response) => {
                    let success = response.status().is_success();
                    response.collect().await.is_ok() && success
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
        let service = sent.elapsed();
        if answered {
            latencies.push((queued + service).as_secs_f64() * 1e3);
        } else {
            errors += 1;
            broken = sender.is_closed();
        }
        free_at = due + queued + service;
        due += load.interval;
    }
    Ok((latencies, errors))
}

fn report(latencies: &mut [f64], errors: usize, seconds: f64) {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1));
        latencies.get(i - 1).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{} {:.0} {:.3} {:.3} {:.3} {:.3} {errors}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0),
    );
}
