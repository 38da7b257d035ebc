//! The HTTPS ceiling `scripts/bench.sh` compares `bindguard serve` with: the same TLS
//! configuration (`bindguard::tls`), the same hyper server, and one fixed AdmissionReview answer
//! for every request after reading its body. No policy, no JSON.
//!
//! Usage: constant_responder ADDR CERT KEY

use bindguard::tls;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const ANSWER: &[u8] = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-0000-0000-000000000000","allowed":true}}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, cert, key] = args.as_slice() else {
        anyhow::bail!("usage: constant_responder ADDR CERT KEY");
    };
    let key = tls::load(Path::new(cert), Path::new(key))?;
    let acceptor = TlsAcceptor::from(tls::server_config(tls::Resolver::new(key))?);
    let listener = TcpListener::bind(addr).await?;
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = listener.accept().await?;
        let (acceptor, builder) = (acceptor.clone(), builder.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(answer);
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    request.into_body().collect().await?;
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(ANSWER)))
        .expect("a constant response is valid"))
}
