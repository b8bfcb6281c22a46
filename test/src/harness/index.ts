// End-to-end test harness: namespaces, servers, workload, capture.
export * from './proc';
export * from './netns';
export * from './servers';
export * from './workload';
export * from './capture';
export * from './replay';
export * from './streams';
export * from './live';
export * from './redis';
export * from './mariadb';
export * from './mysql-workload';
export * from './faults';
export * from './note';
export * from './syn-retries';
