//! The `relay` role (see DESIGN.md).
use clap::Args as ClapArgs;

/// Options of `live2vod relay`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {}

/// Runs the role until it is asked to stop.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`live2vod relay` is not implemented yet")
}
