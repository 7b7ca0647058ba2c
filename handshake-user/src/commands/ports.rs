//! Protected port lists as operators type them: "80,443", ranges "8000-8010", or both;
//! TCP ports 1..=65535, each once, at most `MAX_PORTS` per interface.

use anyhow::anyhow;
use handshake_common::config::MAX_PORTS;

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
    if ports.len() >= MAX_PORTS as usize {
        return Err(format!(
            "more than {MAX_PORTS} ports; handshake protects at most {MAX_PORTS} per interface"
        ));
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

/// Adds the ports of one item ("443" or "8000-8010") to `ports`.
pub fn parse_item(item: &str, ports: &mut Vec<u16>) -> Result<(), String> {
    let number = |text: &str| -> Result<i64, String> {
        text.trim().parse().map_err(|_| {
            format!(
                "{:?} is not a port number; give TCP ports like 80,443 or 8000-8010",
                text.trim()
            )
        })
    };
    let (first, last) = match item.split_once('-') {
        Some((first, last)) => (number(first)?, number(last)?),
        None => (number(item)?, number(item)?),
    };
    if last < first {
        return Err(format!(
            "range {first}-{last} ends before it starts; write it low-high"
        ));
    }
    // Checked one by one, so an out-of-range end or an overlap is named; a huge range
    // stops at the port limit.
    for port in first..=last {
        let port = check(port, ports)?;
        ports.push(port);
    }
    Ok(())
}

/// The `--ports` list: comma-separated ports and ranges.
pub fn parse(list: &str) -> anyhow::Result<Vec<u16>> {
    let mut ports: Vec<u16> = Vec::new();
    for item in list.split(',') {
        parse_item(item, &mut ports).map_err(|reason| anyhow!("--ports {list:?}: {reason}"))?;
    }
    Ok(ports)
}

/// Port arguments of `handshake ports add|remove`: each a list as for `--ports`.
pub fn parse_args(args: &[String]) -> anyhow::Result<Vec<u16>> {
    let mut ports: Vec<u16> = Vec::new();
    for arg in args {
        for item in arg.split(',') {
            parse_item(item, &mut ports).map_err(|reason| anyhow!("ports {arg:?}: {reason}"))?;
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::{parse, parse_args};

    #[test]
    fn accepts_lists_and_ranges() {
        assert_eq!(parse("80, 443,8080").unwrap(), vec![80, 443, 8080]);
        assert_eq!(parse("80-83,443").unwrap(), vec![80, 81, 82, 83, 443]);
        assert_eq!(parse("8080-8080").unwrap(), vec![8080]);
        assert_eq!(
            parse_args(&["80".into(), "443,8000-8002".into()]).unwrap(),
            vec![80, 443, 8000, 8001, 8002]
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
            error("80-90,85"),
            "--ports \"80-90,85\": port 85 appears twice; list each port once"
        );
        assert_eq!(
            error("90-80"),
            "--ports \"90-80\": range 90-80 ends before it starts; write it low-high"
        );
        assert_eq!(
            error("1-2000"),
            "--ports \"1-2000\": more than 1024 ports; handshake protects at most 1024 per interface"
        );
        assert_eq!(
            error("http"),
            "--ports \"http\": \"http\" is not a port number; give TCP ports like 80,443 or 8000-8010"
        );
        assert_eq!(
            error(""),
            "--ports \"\": \"\" is not a port number; give TCP ports like 80,443 or 8000-8010"
        );
        assert_eq!(
            parse_args(&["0".into()]).unwrap_err().to_string(),
            "ports \"0\": port 0 is out of range; TCP ports are 1 to 65535"
        );
    }
}
