//! Latency and throughput of the remote client against one server: sequential puts and gets
//! (one caller, blocking `Client`), then puts from 64 concurrent callers (`AsyncClient`).
//! A fixed number of requests per phase, so a run is bounded.
//!
//! ```text
//! cargo run --release -p etch-client --example latency -- 127.0.0.1:2379 [requests]
//! ```

use std::time::{Duration, Instant};

use etch_client::{Client, ClientOptions};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut samples: Vec<Duration>, total: Duration) {
    samples.sort();
    println!(
        "{what:<28} {:>6} req  p50 {:>7.1?}  p99 {:>7.1?}  {:>8.0} req/s",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples.len() as f64 / total.as_secs_f64()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().ok_or("usage: latency ENDPOINT [REQUESTS]")?;
    let requests: usize = args.next().map_or(Ok(2000), |n| n.parse())?;
    let client = Client::connect(&[endpoint.as_str()], ClientOptions::default())?;
    let value = vec![b'v'; 100];

    for (phase, put) in [("put, 1 caller", true), ("get, 1 caller", false)] {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(requests);
        for i in 0..requests {
            let key = format!("bench/{i:06}");
            let t = Instant::now();
            if put {
                client.put(&key, &value)?;
            } else {
                client.get(&key)?;
            }
            samples.push(t.elapsed());
        }
        report(phase, samples, started.elapsed());
    }

    const CALLERS: usize = 64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let inner = client.async_client().clone();
    let (samples, total) = runtime.block_on(async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for caller in 0..CALLERS {
            let c = inner.clone();
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                for i in (caller..requests).step_by(CALLERS) {
                    let t = Instant::now();
                    c.put(format!("bench/{i:06}"), &value).await?;
                    samples.push(t.elapsed());
                }
                Ok::<_, etch_client::Error>(samples)
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.map_err(|e| e.to_string())??);
        }
        Ok::<_, Box<dyn std::error::Error>>((all, started.elapsed()))
    })?;
    report("put, 64 callers", samples, total);
    Ok(())
}
