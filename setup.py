"Install fastmix from the metadata in settings.ini (the design card's single source of package metadata)."
from configparser import ConfigParser
from setuptools import setup, find_packages

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable']
licenses = dict(apache2=('Apache Software License 2.0', 'OSI Approved :: Apache Software License'))
lic = licenses[cfg['license']]
py = cfg['min_python']
split = lambda k: cfg.get(k, '').split()

setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(), long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'], url=cfg['git_url'],
    license=lic[0], keywords=cfg['keywords'],
    classifiers=[f'Development Status :: {statuses[int(cfg["status"]) - 1]}', 'Intended Audience :: Developers',
                 f'License :: {lic[1]}', f'Programming Language :: Python :: {py}',
                 f'Natural Language :: {cfg["language"]}'],
    packages=find_packages(include=[cfg['lib_path'], f"{cfg['lib_path']}.*"]), include_package_data=True,
    python_requires=f'>={py}', install_requires=split('requirements'),
    extras_require={'dev': split('dev_requirements')},
    entry_points={'console_scripts': split('console_scripts'), 'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d']},
    zip_safe=False,
)
