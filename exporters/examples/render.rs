//! Prints one scrape of the node collectors on this machine (for comparing with node_exporter).

fn main() {
    let exporter = pharos_exporters::Exporter::new(pharos_exporters::Options::default());
    print!("{}", exporter.render());
}
