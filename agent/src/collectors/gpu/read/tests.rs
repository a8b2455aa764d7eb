use super::*;

#[test]
fn process_names_are_read_once_per_pid_and_forgotten_when_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("42")).unwrap();
    std::fs::write(dir.path().join("42/comm"), "ollama\n").unwrap();
    let mut state = ReaderState::default();
    let reading = |pids: &[u32], state: &mut ReaderState| {
        state.pass += 1;
        let mut r = DeviceReading {
            processes: Some(
                pids.iter()
                    .map(|&pid| GpuProcess {
                        pid,
                        used_bytes: 1,
                        name: None,
                    })
                    .collect(),
            ),
            ..DeviceReading::default()
        };
        state.name_processes(&mut r, &ProcReader::new(dir.path()));
        let pass = state.pass;
        state.names.retain(|_, (_, seen)| *seen == pass);
        r.processes
            .unwrap()
            .into_iter()
            .map(|p| p.name.as_deref().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reading(&[42, 7], &mut state),
        vec![Some("ollama".into()), None]
    );
    // Renaming the file does not matter while PID 42 stays: it was read once.
    std::fs::write(dir.path().join("42/comm"), "other\n").unwrap();
    assert_eq!(reading(&[42], &mut state), vec![Some("ollama".into())]);
    assert_eq!(state.names.len(), 1);
    // Gone for one pass, then a new process with the same PID is read afresh.
    assert_eq!(reading(&[], &mut state), Vec::<Option<String>>::new());
    assert_eq!(reading(&[42], &mut state), vec![Some("other".into())]);
}

#[test]
fn field_sets_remember_members() {
    let mut s = Fields::default();
    assert!(!s.contains(Field::Energy));
    s.insert(Field::Energy);
    s.insert(Field::Processes);
    assert!(s.contains(Field::Energy) && s.contains(Field::Processes));
    assert!(!s.contains(Field::Fan));
}

#[test]
fn fields_name_their_metrics_from_the_registry() {
    assert_eq!(Field::Memory.metric(), "hw.gpu.memory.*");
    assert_eq!(
        Field::Utilization.metric(),
        "hw.gpu.utilization, hw.gpu.memory_controller.utilization"
    );
    assert_eq!(Field::Shutdown.metric(), "hw.temperature.limit");
    assert_eq!(Field::Processes.metric(), "process.gpu.memory.usage");
}
