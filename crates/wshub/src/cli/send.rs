//! `wshub send`: one request of any type over `/ws`, its reply printed — for trying handlers and
//! debugging the protocol by hand.

use super::dial::{self, Target};
use super::output::{Format, Screen};
use super::{GOAL_NOT_MET, Payload};
use crate::args::SendArgs;
use anyhow::{Result, anyhow};
use std::process::ExitCode;

pub async fn run(args: SendArgs) -> Result<ExitCode> {
    let target = Target::from_args(&args.target)?;
    let payload = match &args.payload {
        Some(text) => Payload::parse(text).map_err(|problem| anyhow!("--payload {problem}"))?,
        None => Payload::empty(),
    };
    let mut fields = vec![("type", args.kind.as_str())];
    if let Some(topic) = &args.topic {
        fields.push(("topic", topic.as_str()));
    }
    let format = if args.json { Format::Json } else { Format::Human };
    let mut screen = Screen::new(format, args.color);

    let mut client = dial::dial(&target, None, None).await.map_err(|e| anyhow!(e))?;
    // The request goes out at once: on a hub that wants an `auth` first, `send --type auth` works.
    let reply = dial::request(&mut client, &fields, &payload, args.timeout)
        .await
        .map_err(|e| anyhow!(e))?;
    // The reply is already in hand; a failed close changes nothing for the user.
    let _ = client.close(1000).await;

    if screen.reply(&reply.text).is_err() {
        // Stdout is closed (`| head`): nothing more to say there.
        return Ok(ExitCode::SUCCESS);
    }
    if reply.is_error() {
        screen.problem(super::explain::error_message(&reply.value));
        return Ok(ExitCode::from(GOAL_NOT_MET));
    }
    Ok(ExitCode::SUCCESS)
}
