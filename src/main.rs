//! The `hati` command line: serve, pair, clients, unpair, config check.

fn main() {
    println!("hati: skeleton");
}
