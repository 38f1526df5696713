//! The gateway at CI size: 50 stand-in nodes, 500 sessions launched and ended, then 500 more
//! in a rolling churn, with every correctness check of the full-size run
//! (`cargo bench --bench gateway_scale`, 1 000 nodes and 10 000 sessions). No timing is
//! asserted; the figures are printed (`cargo test --test gateway_scale -- --nocapture`).

#[path = "support/gateway_sim.rs"]
mod sim;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_take_five_hundred_sessions_and_give_every_port_back() {
    let figures = sim::Sim::run(sim::Options {
        nodes: 50,
        dials: 16,
        join_retry: Duration::from_millis(20),
        sessions: 500,
        concurrency: 16,
        launch_delay: Duration::from_millis(1),
        churn: 500,
    })
    .await;
    println!("{}", figures.table());
    println!("launch p99: {:?} (not asserted)", figures.launch_p99());
}

#[test]
fn capacities_add_up_and_stay_in_range() {
    for (nodes, sessions) in [(1000, 10_000), (50, 500), (7, 23), (1, 1), (3, 3)] {
        let capacities = sim::capacities(nodes, sessions);
        assert_eq!(capacities.len(), nodes);
        assert_eq!(capacities.iter().sum::<u32>() as usize, sessions);
        assert!(capacities.iter().all(|&c| c >= 1), "{capacities:?}");
    }
    let capacities = sim::capacities(1000, 10_000);
    assert_eq!(capacities.iter().min(), Some(&1));
    assert_eq!(capacities.iter().max(), Some(&19));
}
