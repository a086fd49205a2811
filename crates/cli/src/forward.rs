//! `coachloop forward`: the flags of the sender side, read into the forwarder's options.

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use coachloop_core::time::{date_start_ms, parse_date};
use coachloop_forwarder::deliver::Target;
use coachloop_forwarder::input::Input;
use coachloop_forwarder::mapping::Mapping;
use coachloop_forwarder::outbox::Outbox;
use coachloop_forwarder::status::{Status, dead_letters};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ForwardArgs {
    #[command(subcommand)]
    pub command: Option<ForwardCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum ForwardCommand {
    /// Show what a forwarder delivered: Pending until its first delivery, then the last
    /// one; counts delivered, queued and dead; the last error; the latest dead letters.
    Status {
        /// The forwarder's state directory [default: as `forward`'s].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Print the status as JSON (as `GET /status` answers it).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("to").args(["target", "region"])))]
#[command(group(ArgGroup::new("from").args(["file", "stdin", "receive"])))]
pub struct RunArgs {
    /// The User Event API's base URL, e.g. https://coachloop.example.com (/events is
    /// added).
    #[arg(long)]
    pub target: Option<String>,
    /// The reference service's region instead: us, eu, ca, uk or de.
    #[arg(long)]
    pub region: Option<String>,
    /// A file holding the User Event API key (events:write; with events:read too, the
    /// forwarder learns which records in a batch were refused).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Follow this JSON-lines audit log (across rotation and truncation).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// With --file: read it to its end, deliver everything, then exit.
    #[arg(long, requires = "file")]
    pub once: bool,
    /// Read records from standard input; deliver everything, then exit.
    #[arg(long)]
    pub stdin: bool,
    /// Receive records pushed to `POST http://ADDR/records` (JSON lines or an array);
    /// `GET /status` is served there too.
    #[arg(long, value_name = "ADDR")]
    pub receive: Option<SocketAddr>,
    /// Serve the status as JSON at `GET http://ADDR/status`.
    #[arg(long, value_name = "ADDR", conflicts_with = "receive")]
    pub status_listen: Option<SocketAddr>,
    /// A mapping file replacing the shipped one (print that with --print-mapping).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Print the shipped mapping file and exit.
    #[arg(long, exclusive = true)]
    pub print_mapping: bool,
    /// Where the outbox and the activation are kept [default:
    /// $XDG_STATE_HOME/coachloop/forward or ~/.local/state/coachloop/forward].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Also send records dated from this day (YYYY-MM-DD, UTC) on, history included;
    /// by default only records dated after the first activation are sent.
    #[arg(long, value_name = "DATE")]
    pub backfill_since: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

pub async fn run(args: ForwardArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(ForwardCommand::Status { state_dir, json }) => status(state_dir, json).await,
        None if args.run.print_mapping => {
            print!("{}", coachloop_forwarder::mapping::DEFAULT);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            crate::init_logging("warn,coachloop_forwarder=info");
            forward(args.run).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn forward(args: RunArgs) -> anyhow::Result<()> {
    let token_file = args.token_file.context(
        "--token-file FILE is needed: a file holding the User Event API key (create one with \
         `coachloop tokens create --name forwarder --scopes events:write,events:read`)",
    )?;
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("cannot read the token file {}", token_file.display()))?;
    let target = Target::new(args.target.as_deref(), args.region.as_deref(), token)?;
    let input = match (args.file, args.stdin, args.receive) {
        (Some(path), _, _) => Input::File {
            path,
            follow: !args.once,
        },
        (_, true, _) => Input::Stdin,
        (_, _, Some(_)) => Input::Http,
        _ => anyhow::bail!("name the records' source: --file FILE, --stdin or --receive ADDR"),
    };
    let mapping = match &args.mapping {
        Some(path) => read_mapping(path)?,
        None => Mapping::default_mapping(),
    };
    let backfill_since = args
        .backfill_since
        .map(|text| {
            parse_date(text.trim()).map(date_start_ms).with_context(|| {
                format!("--backfill-since `{text}` is not a date written YYYY-MM-DD")
            })
        })
        .transpose()?;
    let listener = match args.receive.or(args.status_listen) {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}; pick another address"))?,
        ),
        None => None,
    };
    let options = coachloop_forwarder::Options {
        target,
        input,
        mapping,
        state_dir: args
            .state_dir
            .unwrap_or_else(coachloop_forwarder::default_state_dir),
        backfill_since,
        listener,
        parallel: usize::from(args.parallel),
    };
    coachloop_forwarder::run(options, crate::shutdown_signal()).await
}

fn read_mapping(path: &Path) -> anyhow::Result<Mapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the mapping file {}", path.display()))?;
    Mapping::parse(&text).with_context(|| {
        format!(
            "the mapping file {} is not valid (`coachloop forward --print-mapping` prints a \
             documented one to start from)",
            path.display()
        )
    })
}

async fn status(state_dir: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let dir = state_dir.unwrap_or_else(coachloop_forwarder::default_state_dir);
    let Some(outbox) = Outbox::open_existing(&dir).await? else {
        anyhow::bail!(
            "no forwarder has kept its state in {}: start one with `coachloop forward` (or name \
             its directory with --state-dir)",
            dir.display()
        );
    };
    let status = Status::of(&outbox).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{status}{}", dead_letters(&outbox.dead(5).await?));
    }
    outbox.close().await;
    Ok(ExitCode::SUCCESS)
}
