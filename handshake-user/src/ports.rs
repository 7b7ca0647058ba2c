//! The `--ports` list: comma-separated TCP ports, each 1..=65535, no repeats.

use anyhow::{anyhow, bail};

pub fn parse(list: &str) -> anyhow::Result<Vec<u16>> {
    let mut ports: Vec<u16> = Vec::new();
    for item in list.split(',').map(str::trim) {
        let port: u32 = item.parse().map_err(|_| {
            anyhow!("port {item:?} in --ports {list:?} is not a number; give TCP ports like 80,443")
        })?;
        if port == 0 || port > u32::from(u16::MAX) {
            bail!("port {port} in --ports {list:?} is out of range; TCP ports are 1 to 65535");
        }
        let port = port as u16;
        if ports.contains(&port) {
            bail!("port {port} appears twice in --ports {list:?}; list each port once");
        }
        ports.push(port);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_a_list() {
        assert_eq!(parse("80, 443,8080").unwrap(), vec![80, 443, 8080]);
    }

    #[test]
    fn errors_name_the_value() {
        let error = |list| parse(list).unwrap_err().to_string();
        assert_eq!(
            error("0"),
            "port 0 in --ports \"0\" is out of range; TCP ports are 1 to 65535"
        );
        assert_eq!(
            error("80,65536"),
            "port 65536 in --ports \"80,65536\" is out of range; TCP ports are 1 to 65535"
        );
        assert_eq!(
            error("80,80"),
            "port 80 appears twice in --ports \"80,80\"; list each port once"
        );
        assert_eq!(
            error("http"),
            "port \"http\" in --ports \"http\" is not a number; give TCP ports like 80,443"
        );
        assert_eq!(
            error(""),
            "port \"\" in --ports \"\" is not a number; give TCP ports like 80,443"
        );
    }
}
