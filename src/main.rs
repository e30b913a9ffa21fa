fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    std::process::exit(autossh::run(&args, &|name| std::env::var_os(name)));
}
