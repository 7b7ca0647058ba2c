//! Protected port lists: TCP ports 1..=65535, each once.

use anyhow::anyhow;

/// Why `port` cannot join `ports`, if it cannot.
pub fn check(port: i64, ports: &[u16]) -> Result<u16, String> {
    if !(1..=i64::from(u16::MAX)).contains(&port) {
        return Err(format!(
            "port {port} is out of range; TCP ports are 1 to 65535"
        ));
    }
    let port = port as u16;
    if ports.contains(&port) {
        return Err(format!("port {port} appears twice; list each port once"));
    }
    Ok(port)
}

/// Ports for people: "80,443", or "none".
pub fn join<'a>(ports: impl IntoIterator<Item = &'a u16>) -> String {
    let ports: Vec<String> = ports.into_iter().map(u16::to_string).collect();
    if ports.is_empty() {
        "none".to_owned()
    } else {
        ports.join(",")
    }
}

/// The `--ports` list: comma-separated.
pub fn parse(list: &str) -> anyhow::Result<Vec<u16>> {
    let mut ports: Vec<u16> = Vec::new();
    for item in list.split(',').map(str::trim) {
        let port: i64 = item.parse().map_err(|_| {
            anyhow!("port {item:?} in --ports {list:?} is not a number; give TCP ports like 80,443")
        })?;
        let port = check(port, &ports).map_err(|reason| anyhow!("--ports {list:?}: {reason}"))?;
        ports.push(port);
    }
    Ok(ports)
}

/// Port arguments of `handshake ports add|remove`: each a number, no repeats.
pub fn parse_args(args: &[String]) -> anyhow::Result<Vec<u16>> {
    let mut ports: Vec<u16> = Vec::new();
    for item in args {
        let port: i64 = item
            .parse()
            .map_err(|_| anyhow!("port {item:?} is not a number; give TCP ports like 80 443"))?;
        ports.push(check(port, &ports).map_err(|reason| anyhow!(reason))?);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::{parse, parse_args};

    #[test]
    fn accepts_a_list() {
        assert_eq!(parse("80, 443,8080").unwrap(), vec![80, 443, 8080]);
        assert_eq!(
            parse_args(&["80".into(), "443".into()]).unwrap(),
            vec![80, 443]
        );
    }

    #[test]
    fn errors_name_the_value() {
        let error = |list| parse(list).unwrap_err().to_string();
        assert_eq!(
            error("0"),
            "--ports \"0\": port 0 is out of range; TCP ports are 1 to 65535"
        );
        assert_eq!(
            error("80,65536"),
            "--ports \"80,65536\": port 65536 is out of range; TCP ports are 1 to 65535"
        );
        assert_eq!(
            error("80,80"),
            "--ports \"80,80\": port 80 appears twice; list each port once"
        );
        assert_eq!(
            error("http"),
            "port \"http\" in --ports \"http\" is not a number; give TCP ports like 80,443"
        );
        assert_eq!(
            error(""),
            "port \"\" in --ports \"\" is not a number; give TCP ports like 80,443"
        );
        assert_eq!(
            parse_args(&["0".into()]).unwrap_err().to_string(),
            "port 0 is out of range; TCP ports are 1 to 65535"
        );
    }
}
