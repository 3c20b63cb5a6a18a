//! `riskstream produce`: publishes events to the input topics the way upstream
//! systems should (keyed, co-partitioned, Avro unless the topic is listed as JSON).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use riskstream_connectors::kafka::input::partition_count;
use riskstream_connectors::kafka::{EventProducer, ValueCodec};
use riskstream_connectors::{EventSource, SimulatorConfig, SimulatorSource};
use riskstream_engine::EngineConfig;
use riskstream_schemas::json;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// JSON-lines file of events (`-` for standard input).
    #[arg(conflicts_with = "simulate")]
    pub file: Option<PathBuf>,
    /// Produce this many events of the seeded simulator instead of a file.
    #[arg(long)]
    pub simulate: Option<u64>,
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated accounts.
    #[arg(long, default_value_t = 1_000)]
    pub accounts: usize,
    /// TOML config file with a `[kafka]` section; flags override it.
    #[arg(long, env = "RISKSTREAM_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "RISKSTREAM_KAFKA_BROKERS")]
    pub brokers: Option<String>,
}

pub fn produce(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let mut k = EngineConfig::load(args.config.as_deref())?.kafka.unwrap_or_default();
    if let Some(b) = args.brokers {
        k.brokers = b;
    }
    let partitions = partition_count(&k, &k.topics.trades)?;
    if partitions == 0 {
        anyhow::bail!("topic `{}` does not exist; run `riskstream topics create` first", k.topics.trades);
    }
    let producer = EventProducer::open(&k, Arc::new(ValueCodec::embedded()), partitions)?;
    let mut sent = 0u64;
    let mut bad = 0u64;
    if let Some(n) = args.simulate {
        let cfg = SimulatorConfig { seed: args.seed, accounts: args.accounts, ..SimulatorConfig::default() };
        let mut sim = SimulatorSource::new(cfg);
        while sent < n {
            let batch = sim.next_batch((n - sent).min(10_000) as usize)?;
            for item in batch.items {
                producer.send(&item.result.map_err(|r| anyhow::anyhow!("simulator made a bad event: {r}"))?)?;
                sent += 1;
            }
            if batch.end {
                break;
            }
        }
    } else {
        let path = args.file.ok_or_else(|| anyhow::anyhow!("give a JSON-lines FILE or --simulate N"))?;
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
            ))
        };
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match json::decode_line(i, &line).result {
                Ok(event) => {
                    producer.send(&event)?;
                    sent += 1;
                }
                Err(r) => {
                    eprintln!("line {}: {r} (not sent)", i + 1);
                    bad += 1;
                }
            }
        }
    }
    producer.flush()?;
    eprintln!("produced {sent} events to {} ({bad} lines refused)", k.brokers);
    Ok(if bad > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
