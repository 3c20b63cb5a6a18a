//! `riskstream topics create`: the Kafka topic layout of distributed mode, printed
//! or applied.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use riskstream_connectors::kafka::KafkaConfig;
use riskstream_engine::EngineConfig;

#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// Create the input, alert, audit and dead-letter topics (existing ones are
    /// left as they are), or print the layout with --dry-run.
    Create(CreateArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// TOML config file with a `[kafka]` section; flags override it.
    #[arg(long, env = "RISKSTREAM_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "RISKSTREAM_KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// Partitions of the account, audit and alert topics: the shard count.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Partitions of the broadcast ticks topic.
    #[arg(long)]
    pub tick_partitions: Option<u32>,
    #[arg(long)]
    pub replication_factor: Option<i16>,
    #[arg(long)]
    pub min_insync_replicas: Option<u32>,
    /// Print the layout without touching the brokers.
    #[arg(long)]
    pub dry_run: bool,
}

/// One topic of the layout.
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub configs: Vec<(&'static str, String)>,
}

/// The topics distributed mode uses and how each must be configured.
pub fn layout(k: &KafkaConfig) -> Vec<TopicSpec> {
    let t = &k.topics;
    let isr = ("min.insync.replicas", k.min_insync_replicas.to_string());
    let input = |name: &str, partitions| TopicSpec {
        name: name.to_string(),
        partitions,
        configs: vec![("retention.ms", k.input_retention_ms.to_string()), isr.clone()],
    };
    vec![
        input(&t.trades, k.partitions),
        input(&t.cash, k.partitions),
        input(&t.actions, k.partitions),
        input(&t.ticks, k.tick_partitions),
        // The shards' logs: kept forever, never compacted (every record matters).
        TopicSpec {
            name: t.audit.clone(),
            partitions: k.partitions,
            configs: vec![
                ("cleanup.policy", "delete".into()),
                ("retention.ms", "-1".into()),
                ("retention.bytes", "-1".into()),
                isr.clone(),
            ],
        },
        TopicSpec { name: t.alerts.clone(), partitions: k.partitions, configs: vec![isr.clone()] },
        input(&t.dead_letters, 1),
    ]
}

pub fn topics(args: TopicsArgs) -> anyhow::Result<ExitCode> {
    let TopicsCommand::Create(a) = args.command;
    let mut k = EngineConfig::load(a.config.as_deref())?.kafka.unwrap_or_default();
    if let Some(b) = a.brokers {
        k.brokers = b;
    }
    if let Some(p) = a.partitions {
        k.partitions = p;
    }
    if let Some(p) = a.tick_partitions {
        k.tick_partitions = p;
    }
    if let Some(r) = a.replication_factor {
        k.replication_factor = r;
    }
    if let Some(m) = a.min_insync_replicas {
        k.min_insync_replicas = m;
    }
    if k.partitions == 0 || k.tick_partitions == 0 {
        anyhow::bail!("--partitions and --tick-partitions must be at least 1");
    }
    if k.min_insync_replicas as i64 > k.replication_factor as i64 {
        anyhow::bail!(
            "--min-insync-replicas {} exceeds --replication-factor {}: no write could succeed",
            k.min_insync_replicas,
            k.replication_factor
        );
    }
    let specs = layout(&k);
    for s in &specs {
        let configs: Vec<String> = s.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<28} partitions={:<4} replication={} {}",
            s.name,
            s.partitions,
            k.replication_factor,
            configs.join(" ")
        );
    }
    if a.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let admin: AdminClient<DefaultClientContext> = k.client_config(&[]).create()?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut t =
                NewTopic::new(&s.name, s.partitions as i32, TopicReplication::Fixed(k.replication_factor as i32));
            for (key, value) in &s.configs {
                t = t.set(key, value);
            }
            t
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let results = rt.block_on(admin.create_topics(&new, &opts))?;
    let mut failed = false;
    for r in results {
        match r {
            Ok(name) => println!("created {name}"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => println!("exists  {name}"),
            Err((name, code)) => {
                eprintln!("error: cannot create {name}: {code}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
